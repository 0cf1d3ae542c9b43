//! Scratch folders for the integration tests that write files.

use std::path::PathBuf;

/// A folder under the system's temporary directory, emptied when made and removed when the
/// test ends, pass or fail (the tests used to leave one folder per test and run behind).
/// Dereferences to its path; bind it to a name for as long as the files are used.
pub struct Scratch(PathBuf);

impl Scratch {
    /// `<tmp>/<name>-<process id>`, new and empty.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a scratch folder");
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl AsRef<std::path::Path> for Scratch {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}
