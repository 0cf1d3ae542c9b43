//! Catching a third-party decoder's panic without its report on stderr.
//!
//! `std::panic::catch_unwind` stops the unwinding, but the process-wide panic hook has
//! already run by then and printed `thread '…' panicked at …` (and a backtrace when
//! `RUST_BACKTRACE` is set). Swapping the hook around each call would not be thread-safe:
//! the hook is global, so a decoder on one thread would silence (or restore the hook under)
//! an unrelated panic on another. Instead a wrapper around the hook in place is installed
//! once, for the life of the process; it stays silent only for a panic on a thread that is
//! inside [`catch_unwind_quietly`] at that moment (a thread-local flag, so decoding on any
//! number of threads, rayon's included, is fine), and hands every other panic to the hook it
//! wraps, unchanged. A program that sets its own hook later replaces the wrapper; panics are
//! then still caught, only no longer silenced.

use std::cell::Cell;
use std::panic;
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`catch_unwind_quietly`].
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

static INSTALL: Once = Once::new();

/// Whether this build is a fuzzing one (`cargo fuzz` sets `--cfg fuzzing`): there the
/// fuzzer's own panic hook must see every panic, since it is what reports them.
#[allow(unexpected_cfgs)]
const FUZZING: bool = cfg!(fuzzing);

fn install_hook() {
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            // `try_with`: a panic while this thread's locals are being torn down is reported.
            if !QUIET.try_with(Cell::get).unwrap_or(false) {
                previous(info);
            }
        }));
    });
}

/// Puts the thread's flag back as it was (an enclosing call may have set it) when dropped.
struct Restore(bool);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = QUIET.try_with(|q| q.set(self.0));
    }
}

/// Runs `f`, turning a panic in it into `Err` (as `catch_unwind`) without the panic hook's
/// report: the caller turns it into an error of its own.
pub(crate) fn catch_unwind_quietly<R>(
    f: impl FnOnce() -> R + panic::UnwindSafe,
) -> std::thread::Result<R> {
    if FUZZING {
        return panic::catch_unwind(f);
    }
    install_hook();
    let _restore = Restore(QUIET.with(|q| q.replace(true)));
    panic::catch_unwind(f)
}

/// Runs a third-party decoder on user bytes, turning a panic in it into
/// [`DataError::Decode`](crate::DataError::Decode) for `path` and `format` ("the TIFF decoder
/// panicked on this file"): hostile input must give an error, not take the process down (tiff
/// 0.10 panicked on a page with an empty SampleFormat tag, found by fuzzing).
pub(crate) fn decode_guarded<R>(
    path: &std::path::Path,
    format: &'static str,
    decode: impl FnOnce() -> crate::Result<R> + panic::UnwindSafe,
) -> crate::Result<R> {
    catch_unwind_quietly(decode).unwrap_or_else(|_| {
        Err(crate::DataError::Decode {
            path: path.to_path_buf(),
            format,
            message: format!("the {format} decoder panicked on this file"),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    const CHILD_ENV: &str = "XRAY_DATA_QUIET_PANIC_CHILD";
    const LOUD: &str = "a deliberate panic outside the decoder";
    const QUIET: &str = "index out of bounds in a stand-in decoder";

    /// The check needs the real stderr of a process, so it runs this test binary again
    /// (`child`, which does nothing unless the environment asks for it) and reads what it
    /// printed.
    #[test]
    fn decoder_panics_are_errors_and_silent_while_other_panics_are_reported() {
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args([
                "io::quiet_panic::tests::child",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, "1")
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("run the child");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
        assert!(
            stdout.contains("1 passed"),
            "the child test did not run:\n{stdout}"
        );
        // The unrelated panic, on another thread at the same time, still reaches the hook.
        assert!(
            stderr.contains(LOUD),
            "the other panic was silenced:\n{stderr}"
        );
        // Nothing of the decoder's panics: neither its message nor a backtrace through it.
        for leak in [QUIET, "stand_in_decoder"] {
            assert!(
                !stderr.contains(leak),
                "the decoder's panic reached stderr ({leak}):\n{stderr}"
            );
        }
    }

    #[inline(never)]
    fn stand_in_decoder(bytes: &[u8]) -> crate::Result<u8> {
        if bytes.len() < 4 {
            panic!("{QUIET}");
        }
        Ok(bytes[0])
    }

    #[test]
    fn child() {
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        let loud = std::thread::spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            panic!("{LOUD}");
        });
        let path = std::path::Path::new("hostile.dcm");
        let errors: Vec<String> = (0..64)
            .into_par_iter()
            .map(
                |_| match decode_guarded(path, "DICOM", || stand_in_decoder(&[1])) {
                    Err(e @ crate::DataError::Decode { .. }) => e.to_string(),
                    other => panic!("expected a decoding error, got {other:?}"),
                },
            )
            .collect();
        assert!(loud.join().is_err());
        assert!(
            errors
                .iter()
                .all(|e| e.contains("the DICOM decoder panicked") && e.contains("hostile.dcm")),
            "{}",
            errors[0]
        );
        // A decoder that does not panic passes its result through.
        assert_eq!(
            decode_guarded(path, "DICOM", || stand_in_decoder(&[7; 4])).ok(),
            Some(7)
        );
    }
}
