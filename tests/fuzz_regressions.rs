//! Inputs kept from fuzzing (`scripts/fuzz.sh`): every file under
//! `tests/fixtures/fuzz/<target>/` goes through its target's check again (fuzz/src/lib.rs,
//! the same code the fuzz target runs): a decoder gives Ok or a DecodeError naming its format,
//! never a panic; the differential targets' fast and slow paths agree; the line framing and
//! body decompression keep their properties. Each file says in its name what it exercises.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod checks;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz")
}

/// Each target directory with its files, sorted.
fn kept() -> Vec<(String, Vec<PathBuf>)> {
    let mut targets: Vec<_> = std::fs::read_dir(dir())
        .expect("tests/fixtures/fuzz is missing")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .map(|path| {
            let mut files: Vec<_> = std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()).collect();
            files.sort();
            (path.file_name().unwrap().to_string_lossy().into_owned(), files)
        })
        .collect();
    targets.sort();
    targets
}

#[test]
fn every_kept_input_passes_its_targets_check() {
    let mut failures = Vec::new();
    let mut count = 0;
    for (target, files) in kept() {
        for file in files {
            let data = std::fs::read(&file).unwrap();
            count += 1;
            match catch_unwind(AssertUnwindSafe(|| checks::check(&target, &data))) {
                Ok(true) => {}
                Ok(false) => failures.push(format!("{}: no fuzz target {target:?}", file.display())),
                Err(_) => failures.push(format!("{}: the check panicked (message above)", file.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(count > 0, "no input under {}", dir().display());
}

/// Every fuzz target has kept inputs, and every directory is a target's: a renamed target
/// cannot leave its findings unchecked.
#[test]
fn the_kept_inputs_cover_every_target() {
    let dirs: Vec<String> = kept()
        .into_iter()
        .filter(|(_, f)| !f.is_empty())
        .map(|(t, _)| t)
        .collect();
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml")).unwrap();
    let mut targets: Vec<String> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"').map(str::to_string))
        .filter(|name| name != "slaflow-fuzz")
        .collect();
    targets.sort();
    assert_eq!(dirs, targets);
    for format in slaflow::decode::Format::ALL {
        assert!(
            targets.contains(&format.name().replace('-', "_")),
            "no fuzz target for {}",
            format.name()
        );
    }
    for other in checks::OTHER_TARGETS {
        assert!(targets.iter().any(|t| t == other), "{other}");
    }
}

/// The checks fail where they must: the harness is not one that passes anything.
#[test]
fn the_checks_catch_what_they_look_for() {
    use slaflow::decode::{DecodeError, Decoded, Format, Location};
    assert!(!checks::check("no_such_target", b""));
    let error = |format| DecodeError {
        format,
        location: Location::Record,
        field: String::new(),
        message: "bad".to_string(),
    };
    let panics = |f: &dyn Fn()| catch_unwind(AssertUnwindSafe(f)).is_err();
    assert!(panics(&|| checks::well_formed(
        Format::Alertmanager,
        &error(Format::Icinga2)
    )));
    assert!(!panics(&|| checks::well_formed(
        Format::Icinga2,
        &error(Format::Icinga2)
    )));
    assert!(panics(&|| checks::agree(
        Ok(Decoded::default()),
        Err(error(Format::DatadogApm)),
        true
    )));
    assert!(!panics(&|| checks::agree(
        Ok(Decoded::default()),
        Ok(Decoded::default()),
        true
    )));
    // `br` is not supported, and the check expects exactly that.
    assert!(!panics(&|| checks::http_body(b"\x06\x00\x00abc")));
}
