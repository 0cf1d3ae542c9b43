//! `scripts/compare_throughput.sh` without the PyTorch twin's environment: it says "only our
//! side runs", and must then run our side. It read every JSON field, ratio and median with
//! `$PYTHON` (the twin's venv), so on a machine without that venv it stopped at the first
//! record ("/work/venv/bin/python: No such file or directory") and printed no figure.

use std::path::Path;
use std::process::Command;

/// Whether `bash` and `python3` both run here (the script needs both).
fn bash_and_python3_run() -> bool {
    ["bash", "python3"].iter().all(|program| {
        Command::new(program)
            .arg("-c")
            .arg("")
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Runs `scripts/compare_throughput.sh` with `args` and the environment `env`, which must
/// succeed; returns its stdout and stderr.
fn run_script(args: &[&str], env: &[(&str, std::ffi::OsString)]) -> (String, String) {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/compare_throughput.sh"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("bash runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    (stdout, stderr)
}

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
    if !bash_and_python3_run() {
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
    let (stdout, stderr) = run_script(
        &["1", "xnet:forward:1:64:1"],
        &[
            ("PATH", path.into()),
            ("OURS", dir.join("throughput").into()),
            ("CARGO_TARGET_DIR", dir.join("target").into()),
            ("PYTHON", dir.join("no-such-python").into()),
            ("OUT", dir.join("records.jsonl").into()),
        ],
    );
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

/// The twin has no DeepLab and no tiled mode: `compare_throughput.sh 1 deeplab:forward:...`
/// called it anyway, its argparse refused `--model deeplab`, and `set -e` ended the script
/// before any figure of that config (or of the configs after it) was printed.
#[cfg(unix)]
#[test]
fn configs_the_twin_lacks_run_on_our_side_alone() {
    if !bash_and_python3_run() {
        eprintln!("skipped: the script needs bash and a python3");
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "xray-seg-compare-throughput-twin-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temporary folder");
    script(
        &dir.join("throughput"),
        r#"echo '{"impl": "xray-seg", "images_per_s": 2.5}'"#,
    );
    // A Python with "torch" whose twin refuses what xnet_torch.py's argparse refuses.
    script(
        &dir.join("python"),
        r#"case "$1" in
  -c) [ "$2" = "import torch" ] && exit 0; exec python3 "$@" ;;
  *xnet_torch.py) case "$*" in
      *"--model deeplab"* | *"--mode tiled"*) echo "xnet_torch.py: error: invalid choice" >&2; exit 2 ;;
    esac
    echo '{"images_per_s": 1.25}' ;;
esac"#,
    );
    let (stdout, _) = run_script(
        &[
            "1",
            "deeplab:forward:1:64:1",
            "xnet:tiled:1:300:1",
            "xnet:forward:1:64:1",
        ],
        &[
            ("OURS", dir.join("throughput").into()),
            ("PYTHON", dir.join("python").into()),
            ("TWIN", dir.join("xnet_torch.py").into()),
            ("OUT", dir.join("records.jsonl").into()),
        ],
    );
    let line = |config: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(config) && l.contains("median"))
            .unwrap_or_else(|| panic!("no median line for {config}:\n{stdout}"))
            .to_string()
    };
    assert!(line("deeplab:forward").ends_with("median n/a"), "{stdout}");
    assert!(line("xnet:tiled").ends_with("median n/a"), "{stdout}");
    assert!(line("xnet:forward").ends_with("median 2.00"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}
