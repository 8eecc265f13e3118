//! Golden interaction scripts: every `testdata/*.txt` is run through
//! [`skiff_verify::script::run_script`] and must render back to itself.
//!
//! `SKIFF_REWRITE=1 cargo test -p skiff-verify --test golden` rewrites the files with the
//! actual outputs instead; review the diff before committing it.

use std::fs;
use std::path::{Path, PathBuf};

use skiff_verify::script::run_script;

/// Lines of diff shown per failing file.
const MAX_DIFF_LINES: usize = 60;
/// Unchanged lines shown around a change.
const CONTEXT: usize = 3;

#[test]
fn golden_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts in {}", dir.display());

    let rewrite = std::env::var("SKIFF_REWRITE").is_ok_and(|v| v == "1");
    let mut failed = Vec::new();
    for path in &files {
        let name = path.file_name().expect("file name").to_string_lossy().into_owned();
        let expected = fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {name}: {e}"));
        // A panic in the core (or the interpreter) is reported against its script.
        let Ok(actual) = std::panic::catch_unwind(|| run_script(&expected)) else {
            eprintln!("testdata/{name}: panicked (see the message above)");
            failed.push(name);
            continue;
        };
        if actual == expected {
            continue;
        }
        if rewrite {
            fs::write(path, &actual).unwrap_or_else(|e| panic!("writing {name}: {e}"));
            eprintln!("rewrote testdata/{name}");
        } else {
            eprintln!("--- testdata/{name} (expected)\n+++ testdata/{name} (actual)");
            eprintln!("{}", diff(&expected, &actual));
            failed.push(name);
        }
    }
    assert!(
        failed.is_empty(),
        "golden scripts differ: {failed:?} (rerun with SKIFF_REWRITE=1 to accept the new outputs)"
    );
}

/// A line diff (longest common subsequence) in unified style, cut after `MAX_DIFF_LINES`.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    // The edit script: (' ' | '-' | '+', line number in the expected file, text).
    let mut ops: Vec<(char, usize, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', i + 1, a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i + 1, a[i]));
            i += 1;
        } else {
            ops.push(('+', i + 1, b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let near_change = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= CONTEXT);
    let mut out = String::new();
    let mut shown = 0;
    let mut last_shown: Option<usize> = None;
    for (k, (tag, line, text)) in ops.iter().enumerate() {
        if !near_change(k) {
            continue;
        }
        if !matches!(last_shown, Some(l) if l + 1 == k) {
            out.push_str(&format!("@@ line {line} @@\n"));
        }
        if shown == MAX_DIFF_LINES {
            out.push_str("... (diff cut short)\n");
            break;
        }
        out.push_str(&format!("{tag}{text}\n"));
        shown += 1;
        last_shown = Some(k);
    }
    out
}
