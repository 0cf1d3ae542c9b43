//! The swap folders of a checkpoint save a crash interrupted, as `checkpoint::replace_dir`
//! leaves them at each point of its sequence (a module of `interrupted_save` and
//! `interrupted_kfold_save`, not a target of its own): the two saves of one folder, the
//! folders a crash leaves, and what a refused resume must keep of them.
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// A checkpoint folder's files: name, contents.
pub type Save = BTreeMap<String, Vec<u8>>;

pub const MARKER: &str = ".complete";
pub const WEIGHTS: &str = "model.safetensors";
/// The order `Trainer::save_last` writes `last/`'s files in (the marker last).
pub const LAST_ORDER: [&str; 5] = [
    WEIGHTS,
    "config.json",
    "optimizer.safetensors",
    "trainer_state.json",
    MARKER,
];
/// The order `Trainer::save_best` writes `best/`'s files in.
pub const BEST_ORDER: [&str; 3] = [WEIGHTS, "config.json", MARKER];
/// The folders of one save's swap: the folder, its staging, the one moved aside, and the
/// name that one takes when an older `<dir>.previous` could not be removed.
pub const SLOTS: [&str; 4] = ["", ".partial", ".previous", ".previous.1"];

/// One checkpoint folder's save before (`old`) and after (`new`) the interrupted one, and the
/// order its files are written in.
pub struct Folder {
    pub order: &'static [&'static str],
    pub old: Save,
    pub new: Save,
}

/// The swap folders (slot suffix, files) of one folder.
pub type Slots = BTreeMap<&'static str, Save>;

/// Copies the folder `from` to `to`, recursively.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            fs::copy(&path, &target).unwrap();
        }
    }
}

/// The files of `dir` (no subfolders), by name.
#[allow(dead_code)] // `interrupted_save`'s
pub fn read_save(dir: &Path) -> Save {
    let mut save = Save::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            save.insert(name, fs::read(&path).unwrap());
        }
    }
    save
}

/// The swap folders of `f` a crash at `point` leaves, `aux` the byte that picks the files
/// written or removed, `stale` whether an older `.previous` stayed.
pub fn crash_state(f: &Folder, point: u8, aux: u8, stale: bool) -> Slots {
    let mut slots = BTreeMap::new();
    let first = |k: usize| -> Save {
        f.order[..k]
            .iter()
            .map(|n| (n.to_string(), f.new[*n].clone()))
            .collect()
    };
    match point {
        0 => {
            slots.insert("", f.old.clone());
        }
        1 => {
            let k = usize::from(aux) % f.order.len();
            let mut staging = first(k);
            if aux & 0x80 != 0 && k + 1 < f.order.len() {
                let next = &f.new[f.order[k]];
                let cut = next.len() * usize::from((aux >> 3) & 15) / 16;
                let tmp = format!(".{}.tmp-{}", f.order[k], std::process::id());
                staging.insert(tmp, next[..cut].to_vec());
            }
            slots.insert("", f.old.clone());
            slots.insert(".partial", staging);
        }
        2 => {
            slots.insert("", f.old.clone());
            slots.insert(".partial", f.new.clone());
        }
        3 => {
            slots.insert(".partial", f.new.clone());
            slots.insert(".previous", f.old.clone());
        }
        4 => {
            slots.insert("", f.new.clone());
            slots.insert(".previous", f.old.clone());
        }
        5 => {
            let kept = f
                .old
                .iter()
                .enumerate()
                .filter(|(n, _)| aux & (1 << n) == 0)
                .map(|(_, (k, v))| (k.clone(), v.clone()))
                .collect();
            slots.insert("", f.new.clone());
            slots.insert(".previous", kept);
        }
        _ => {
            slots.insert("", f.new.clone());
        }
    }
    if stale && (3..=5).contains(&point) {
        let moved = slots.remove(".previous").unwrap();
        slots.insert(".previous.1", moved);
        // An older save, partly removed: its weights went first.
        let mut older = f.old.clone();
        older.remove(WEIGHTS);
        slots.insert(".previous", older);
    }
    slots
}

/// Whether `files` holds every file of `save` (but its marker) unchanged.
pub fn holds(files: &Save, save: &Save) -> bool {
    save.iter()
        .filter(|(n, _)| *n != MARKER)
        .all(|(n, b)| files.get(n) == Some(b))
}

/// The slots of the folder `name` (a path relative to the run, `last` or `fold-1/last`) found
/// in a snapshot of the run.
pub fn slots_of(snap: &BTreeMap<PathBuf, Vec<u8>>, name: &str) -> Slots {
    let mut slots = BTreeMap::new();
    for slot in SLOTS {
        let dir = PathBuf::from(format!("{name}{slot}"));
        let files: Save = snap
            .iter()
            .filter(|(rel, _)| rel.parent() == Some(dir.as_path()))
            .map(|(rel, b)| {
                (
                    rel.file_name().unwrap().to_string_lossy().into_owned(),
                    b.clone(),
                )
            })
            .collect();
        if !files.is_empty() {
            slots.insert(slot, files);
        }
    }
    slots
}

/// Whether any slot holds one of the folder's two whole saves.
pub fn has_whole(slots: &Slots, f: &Folder) -> bool {
    slots.values().any(|s| holds(s, &f.old) || holds(s, &f.new))
}

/// Asserts what a refused resume may have changed in the run (`before` and `after` its
/// snapshots): no file that `skip` does not pass over, except the log (`is_log`), which may
/// only have lost lines (the trim of epochs to train again).
pub fn assert_files_kept(
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
    skip: impl Fn(&Path) -> bool,
    is_log: impl Fn(&Path) -> bool,
    e: &str,
    describe: &dyn Fn() -> String,
) {
    for (rel, bytes) in before {
        if skip(rel) {
            continue;
        }
        if is_log(rel) {
            let old = String::from_utf8_lossy(bytes);
            let mut old = old.lines();
            let now = after
                .get(rel)
                .map(|b| String::from_utf8_lossy(b).into_owned());
            for line in now.as_deref().unwrap_or("").lines() {
                assert!(old.any(|o| o == line), "{e}: log line {line:?} added");
            }
        } else {
            assert!(
                after.get(rel) == Some(bytes),
                "a refused resume changed {}: {e}; {}",
                rel.display(),
                describe()
            );
        }
    }
}

/// Asserts that a refused resume left in the swap of each of `saves` (`(name, folder)`, the
/// name as [`slots_of`] takes it) only copies that were there before, or a `best/` caught up
/// from a save of `last_name`, and kept a whole copy of each save it held.
pub fn assert_saves_kept(
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
    last_name: &str,
    saves: [(&str, &Folder); 2],
    e: &str,
    describe: &dyn Fn() -> String,
) {
    let was_weights: Vec<Vec<u8>> = slots_of(before, last_name)
        .into_values()
        .filter_map(|mut s| s.remove(WEIGHTS))
        .collect();
    for (name, folder) in saves {
        let (was, now) = (slots_of(before, name), slots_of(after, name));
        for (slot, files) in &now {
            let caught_up = name.ends_with("best")
                && slot.is_empty()
                && files.get(WEIGHTS).is_some_and(|w| was_weights.contains(w));
            assert!(
                was.values().any(|s| s == files) || caught_up,
                "a refused resume left a {name}{slot}/ that was not there before: {e}; {}",
                describe()
            );
        }
        if has_whole(&was, folder) {
            assert!(
                has_whole(&now, folder),
                "a refused resume deleted the only whole copy of {name}/: {e}; {}",
                describe()
            );
        }
    }
}

/// Writes the slots of the folder `name` into `run_dir`.
pub fn write_slots(run_dir: &Path, name: &str, slots: &Slots) {
    for (slot, files) in slots {
        let dir = run_dir.join(format!("{name}{slot}"));
        fs::create_dir_all(&dir).unwrap();
        for (file, bytes) in files {
            fs::write(dir.join(file), bytes).unwrap();
        }
    }
}

/// What only a user's copy of the run holds beside a crash's state (`mode` mod 5): 0
/// nothing; 1 the file `pick` chooses in the slots of `last` (even `pick`) or `best` edited
/// by `edits` ([`crate::byte_edits::edited`]); 2 a `.complete` marker in every `.partial/`;
/// 3 no marker in any slot of `last` or `best` (`pick` bit 0); 4 the file `pick` chooses
/// removed.
pub fn users_copy(mode: u8, pick: u8, edits: &[u8], last: &mut Slots, best: &mut Slots) {
    let pick_slot = |slots: &Slots| -> Option<(&'static str, String)> {
        let (slot, files) = slots
            .iter()
            .nth(usize::from(pick >> 1) % slots.len().max(1))?;
        let file = files
            .keys()
            .nth(usize::from(pick >> 3) % files.len().max(1))?;
        Some((slot, file.clone()))
    };
    match mode % 5 {
        1 | 4 => {
            let target = if pick & 1 == 0 { last } else { best };
            if let Some((slot, file)) = pick_slot(target) {
                let files = target.get_mut(slot).unwrap();
                if mode % 5 == 1 {
                    let bytes = crate::byte_edits::edited(&files[&file], edits);
                    files.insert(file, bytes);
                } else {
                    files.remove(&file);
                }
            }
        }
        2 => {
            for slots in [last, best] {
                if let Some(staging) = slots.get_mut(".partial") {
                    staging.insert(MARKER.to_string(), Vec::new());
                }
            }
        }
        3 => {
            let target = if pick & 1 == 0 { last } else { best };
            for files in target.values_mut() {
                files.remove(MARKER);
            }
        }
        _ => {}
    }
}
