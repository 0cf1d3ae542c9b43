//! `scripts/compare_throughput.sh` without the PyTorch twin's environment: it says "only our
//! side runs", and must then run our side. It read every JSON field, ratio and median with
//! `$PYTHON` (the twin's venv), so on a machine without that venv it stopped at the first
//! record ("/work/venv/bin/python: No such file or directory") and printed no figure.

use std::path::Path;
use std::process::Command;

/// Writes an executable shell script.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write a script");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .expect("make it executable");
    }
}

#[cfg(unix)]
#[test]
fn our_side_runs_alone_without_the_twin_s_python() {
    let have = |program: &str| {
        Command::new(program)
            .arg("-c")
            .arg("")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !have("bash") || !have("python3") {
        eprintln!("skipped: the script needs bash and a python3");
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "xray-seg-compare-throughput-{}",
        std::process::id()
    ));
    let examples = dir.join("target/release/examples");
    std::fs::create_dir_all(&examples).expect("temporary folder");
    // Our side: a stand-in for the example's binary, one JSON record as it prints. The
    // script finds it through OURS; a cargo that builds nothing stands in for the build
    // where OURS is not read.
    let record = r#"echo '{"impl": "xray-seg", "model": "xnet", "images_per_s": 2.5}'"#;
    script(&dir.join("throughput"), record);
    script(&examples.join("throughput"), record);
    script(&dir.join("cargo"), "exit 0");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/compare_throughput.sh"))
        .args(["1", "xnet:forward:1:64:1"])
        .env("PATH", path)
        .env("OURS", dir.join("throughput"))
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env("PYTHON", dir.join("no-such-python"))
        .env("OUT", dir.join("records.jsonl"))
        .output()
        .expect("bash runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("only our side runs"), "{stderr}");
    // Our images/s, no ratio, and a median line that says so.
    assert!(
        stdout.contains("2.500") && stdout.contains("n/a"),
        "{stdout}"
    );
    assert!(stdout.contains("median n/a"), "{stdout}");
    let records = std::fs::read_to_string(dir.join("records.jsonl")).expect("records");
    assert_eq!(records.lines().count(), 1, "{records}");
    assert!(records.contains(r#""torch": null"#), "{records}");
    std::fs::remove_dir_all(&dir).ok();
}
