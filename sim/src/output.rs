//! Output files written whole or not at all: the bytes go to a temporary
//! file beside the target, which is renamed over it only once every byte is
//! written and synced. A full disk or any other error removes the temporary
//! file and leaves no half-written output behind. A target that is not a
//! regular file (a device node, FIFO, directory, symbolic link) is never
//! replaced, and a target is checked before a run ([`check_target`]).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Checks that `path` can take an output file: its directory exists and
/// is writable (a probe file is made and removed there), and `path` is
/// absent or a regular file. A device node, FIFO, socket, directory or
/// symbolic link is never replaced (renaming over `/dev/null` as root
/// would replace the device with a file). Called before a run, so a bad
/// path is reported before the simulation, and again before each write.
pub fn check_target(path: &Path) -> anyhow::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            anyhow::bail!("{}: a symbolic link; not replacing it", path.display())
        }
        Ok(m) if !m.is_file() => anyhow::bail!(
            "{}: not a regular file (a directory, device, FIFO or socket); not replacing it",
            path.display()
        ),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        anyhow::bail!("{}: no directory {}", path.display(), dir.display());
    }
    let probe = temp_beside(path);
    File::create(&probe)
        .and_then(|_| fs::remove_file(&probe))
        .with_context(|| format!("{}: cannot write in {}", path.display(), dir.display()))
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    check_target(path)?;
    let tmp = temp_beside(path);
    let r = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r.with_context(|| format!("writing {}", path.display()))
}

/// A writer into a temporary file that becomes `path` on [`commit`]; if
/// dropped uncommitted, the temporary file is removed.
///
/// [`commit`]: AtomicFile::commit
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<std::io::BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `path`.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        check_target(path)?;
        let tmp = temp_beside(path);
        let file = File::create(&tmp).with_context(|| format!("creating {}", path.display()))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            file: Some(std::io::BufWriter::new(file)),
        })
    }

    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let f = self.file.as_mut().expect("open until commit");
        f.write_all(bytes)
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// Flushes, syncs and renames into place.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let f = self.file.take().expect("open until commit");
        let r = (|| -> std::io::Result<()> {
            let f = f.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            fs::rename(&self.tmp, &self.path)
        })();
        r.with_context(|| format!("writing {}", self.path.display()))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // After a commit the file is gone (renamed); otherwise it is partial.
        let _ = fs::remove_file(&self.tmp);
    }
}

fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}
