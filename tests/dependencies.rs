//! What a crate that embeds the library builds: the root library and the four crates it
//! depends on, without the examples' command-line and progress-bar crates (README, "Usage";
//! docs/architecture.md, "The jobs"). xnet-model's trainer draws its bar only with its
//! feature `progress`, which the root package turns on for its examples alone.

use std::process::Command;

/// The packages `cargo tree` lists for `package` as a dependency of another crate (normal
/// and build dependencies, no dev-dependencies, features resolved as such a build resolves
/// them), one name per line.
fn normal_dependencies(package: &str, features: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "tree",
        "--offline",
        "--edges",
        "no-dev",
        "--prefix",
        "none",
        "--format",
        "{p}",
        "--package",
        package,
    ]);
    cmd.args(features);
    let out = cmd.output().expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("cargo tree prints UTF-8")
}

fn names(tree: &str) -> Vec<&str> {
    tree.lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

#[test]
fn the_library_builds_neither_clap_nor_indicatif() {
    let tree = normal_dependencies("xray-seg", &[]);
    let names = names(&tree);
    assert!(names.contains(&"xnet-model"), "{tree}");
    for unwanted in ["clap", "indicatif"] {
        assert!(
            !names.contains(&unwanted),
            "a crate embedding xray-seg would build {unwanted}:\n{tree}"
        );
    }
}

#[test]
fn xnet_model_leaves_indicatif_out_without_its_progress_feature() {
    let bare = normal_dependencies("xnet-model", &["--no-default-features"]);
    assert!(!names(&bare).contains(&"indicatif"), "{bare}");
    // On by default, for a crate that trains with the bar.
    let default = normal_dependencies("xnet-model", &[]);
    assert!(names(&default).contains(&"indicatif"), "{default}");
}
