//! The committed fuzz inputs, for the tests that replay them.

use std::path::{Path, PathBuf};

/// The files of `fuzz/<sub>/<target>` for each of `subs` (`"corpus"`, `"regressions"`),
/// sorted by path, with their file names. A missing directory holds no inputs.
///
/// ```
/// let seeds = herd_testkit::fuzz_inputs("negotiate", &["corpus"])?;
/// assert!(seeds.iter().any(|(name, _)| name == "prometheus-2.42"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn fuzz_inputs(target: &str, subs: &[&str]) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files: Vec<PathBuf> = subs
        .iter()
        .filter_map(|sub| std::fs::read_dir(root.join(sub).join(target)).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Ok((name, std::fs::read(&p)?))
        })
        .collect()
}
