//! Output files written whole or not at all: the bytes go to a temporary
//! file beside the target, which is renamed over it only once every byte is
//! written and synced. A full disk or any other error removes the temporary
//! file and leaves no half-written output behind. A target that is not a
//! regular file (a device node, FIFO, directory, symbolic link) is never
//! replaced, and a target is checked before a run ([`check_target`]).
//!
//! Every temporary file is made through [`create_temp`], which records it;
//! on SIGINT, SIGTERM or SIGHUP ([`remove_temps_on_signals`]) the recorded
//! files are removed before the process dies of the signal.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

/// The temporary files that exist now. A file is made and recorded under
/// the lock, and the signal handler removes them under it and never lets
/// go: no file can be made after its sweep and outlive the process.
static TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn temps() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    TEMPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Creates the temporary file `path` and records it for the signal sweep.
fn create_temp(path: &Path) -> std::io::Result<File> {
    let mut t = temps();
    let f = File::create(path)?;
    t.push(path.to_path_buf());
    Ok(f)
}

/// Removes the temporary file `path` (if it is still there: a committed
/// one was renamed) and forgets it.
fn remove_temp(path: &Path) {
    let mut t = temps();
    let _ = fs::remove_file(path);
    t.retain(|p| p != path);
}

/// Forgets `path`, renamed into place.
fn forget_temp(path: &Path) {
    temps().retain(|p| p != path);
}

/// Starts a thread that, on SIGINT, SIGTERM or SIGHUP, removes every
/// temporary file and then dies of the signal as it would have (exit
/// status 128 + the signal's number to the shell).
pub fn remove_temps_on_signals() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("installing the signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let mut t = temps();
                for p in t.drain(..) {
                    let _ = fs::remove_file(p);
                }
                // Die of the signal, holding the lock: nothing new is made.
                let _ = signal_hook::low_level::emulate_default_handler(sig);
                std::process::exit(128 + sig);
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

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
    let made = create_temp(&probe).map(drop);
    remove_temp(&probe);
    made.with_context(|| format!("{}: cannot write in {}", path.display(), dir.display()))
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    check_target(path)?;
    let tmp = temp_beside(path);
    let r = (|| -> std::io::Result<()> {
        let mut f = create_temp(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    match r {
        Ok(()) => forget_temp(&tmp),
        Err(_) => remove_temp(&tmp),
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
        let file = create_temp(&tmp).with_context(|| format!("creating {}", path.display()))?;
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
        if r.is_ok() {
            forget_temp(&self.tmp);
        }
        r.with_context(|| format!("writing {}", self.path.display()))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // After a commit the file is gone (renamed); otherwise it is partial.
        remove_temp(&self.tmp);
    }
}

fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}
