//! Where a command's document goes while it is written: stdout, or a
//! file that appears whole or not at all. The render writes into it piece
//! by piece, so no size of output is held in memory.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A document's destination. Write into it (it buffers), then
/// [`Output::finish`]: a file is only put in place then. A failed write
/// is kept with the path it concerns and reported by `finish`, in place
/// of whatever error the writer's caller makes of it.
pub struct Output<'o> {
    to: BufWriter<Target<'o>>,
}

enum Target<'o> {
    /// Stdout (or what stands for it), written as the buffer fills.
    Stream(&'o mut dyn Write),
    /// A temporary file beside `path`, created at the first write and
    /// renamed over `path` by `finish`.
    File {
        path: PathBuf,
        file: Option<tempfile::NamedTempFile>,
    },
    /// The first failure: later writes fail at once.
    Failed(Error),
}

/// Bytes gathered before each write to the destination.
const BUFFER_BYTES: usize = 64 * 1024;

impl<'o> Output<'o> {
    /// Writes go to `out` (stdout).
    pub fn stream(out: &'o mut dyn Write) -> Output<'o> {
        Output {
            to: BufWriter::with_capacity(BUFFER_BYTES, Target::Stream(out)),
        }
    }

    /// Writes go to a temporary file that replaces `path` when finished.
    pub fn file(path: &Path) -> Output<'o> {
        Output {
            to: BufWriter::with_capacity(
                BUFFER_BYTES,
                Target::File {
                    path: path.to_path_buf(),
                    file: None,
                },
            ),
        }
    }

    /// `--output FILE`, else `out`.
    pub fn to(path: Option<&Path>, out: &'o mut dyn Write) -> Output<'o> {
        match path {
            Some(path) => Output::file(path),
            None => Output::stream(out),
        }
    }

    /// The error a failed write left, if any: what to report rather than
    /// the failure of the render that was writing.
    pub fn failure(&mut self) -> Option<Error> {
        // What the buffer still holds may be what fails.
        let _ = self.to.flush();
        match self.to.get_mut() {
            Target::Failed(error) => Some(std::mem::replace(error, placeholder())),
            _ => None,
        }
    }

    /// Writes what is buffered and, for a file, syncs it and renames it
    /// over its path (an empty document still makes a file).
    pub fn finish(mut self) -> Result<()> {
        if let Some(error) = self.failure() {
            return Err(error);
        }
        match self.to.into_inner().map_err(|e| e.into_error()) {
            Ok(Target::Stream(_)) => Ok(()),
            Ok(Target::File { path, file }) => {
                let file = match file {
                    Some(file) => file,
                    None => create_beside(&path)?,
                };
                file.as_file()
                    .sync_all()
                    .map_err(|source| io_error("write", &path, source))?;
                file.persist(&path)
                    .map_err(|e| io_error("replace", &path, e.error))?;
                Ok(())
            }
            Ok(Target::Failed(error)) => Err(error),
            // `flush` above failed and so recorded its error; kept for
            // completeness.
            Err(source) => Err(io_error("write", Path::new("<output>"), source)),
        }
    }
}

impl Write for Output<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.to.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.to.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.to.flush()
    }
}

impl Write for Target<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = match self {
            Target::Stream(out) => out
                .write(buf)
                .map_err(|source| io_error("write", Path::new("<stdout>"), source)),
            Target::File { path, file } => {
                if file.is_none() {
                    match create_beside(path) {
                        Ok(created) => *file = Some(created),
                        Err(error) => return Err(self.fail(error)),
                    }
                }
                let path = path.clone();
                file.as_mut()
                    .map_or(Ok(0), |f| f.write(buf))
                    .map_err(|source| io_error("write", &path, source))
            }
            Target::Failed(_) => return Err(io::Error::other("an earlier write failed")),
        };
        written.map_err(|error| self.fail(error))
    }

    fn flush(&mut self) -> io::Result<()> {
        let flushed = match self {
            Target::Stream(out) => out
                .flush()
                .map_err(|source| io_error("write", Path::new("<stdout>"), source)),
            Target::File { .. } => Ok(()),
            Target::Failed(_) => return Err(io::Error::other("an earlier write failed")),
        };
        flushed.map_err(|error| self.fail(error))
    }
}

impl Target<'_> {
    /// Keeps `error` (dropping a half-written temporary file) and hands
    /// the writer an error of the same kind.
    fn fail(&mut self, error: Error) -> io::Error {
        let kind = match &error {
            Error::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        *self = Target::Failed(error);
        io::Error::new(kind, "the output failed")
    }
}

/// An error to leave behind once the real one is taken.
fn placeholder() -> Error {
    io_error(
        "write",
        Path::new("<output>"),
        io::Error::other("an earlier write failed"),
    )
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A temporary file in `path`'s directory, with the permissions any new
/// file gets under the umask (0644 under 022), as `>` would give it
/// (tempfile's own are 0600).
fn create_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    builder
        .tempfile_in(dir)
        .map_err(|source| io_error("create a temporary file for", path, source))
}

/// `text` written and synced into a temporary file beside `path`, for the
/// caller to rename over `path` (or drop, which removes it).
pub fn temporary_beside(path: &Path, text: &str) -> Result<tempfile::TempPath> {
    let mut file = create_beside(path)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|source| io_error("write", path, source))?;
    Ok(file.into_temp_path())
}

/// Writes `text` to a temporary file beside `path` and renames it over
/// `path`, so a reader never sees half a file.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let mut output = Output::file(path);
    // A failure is kept in `output` and reported by `finish`.
    let _ = output.write_all(text.as_bytes());
    output.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appears_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.yml");
        std::fs::write(&path, "old\n").unwrap();
        let mut output = Output::file(&path);
        // More than the buffer, so the temporary file is written to.
        let text = "x".repeat(3 * BUFFER_BYTES);
        output.write_all(text.as_bytes()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        output.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_unfinished_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.yml");
        let mut output = Output::file(&path);
        output.write_all(&[b'x'; 3 * BUFFER_BYTES]).unwrap();
        drop(output);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_empty_document_still_makes_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.yml");
        Output::file(&path).finish().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn a_failed_write_is_reported_with_its_path() {
        let path = Path::new("/nonexistent-ripple-dir/plan.yml");
        let mut output = Output::file(path);
        assert!(output.write_all(&[b'x'; 3 * BUFFER_BYTES]).is_err());
        let error = output.finish().unwrap_err();
        let Error::Io {
            action, path: at, ..
        } = error
        else {
            panic!("{error:?}");
        };
        assert_eq!(
            (action, at.as_path()),
            ("create a temporary file for", path)
        );
    }

    #[test]
    fn a_stream_gets_everything_in_order() {
        let mut sink = Vec::new();
        let mut output = Output::stream(&mut sink);
        for i in 0..20_000 {
            writeln!(output, "{i}").unwrap();
        }
        output.finish().unwrap();
        let expected: String = (0..20_000).map(|i| format!("{i}\n")).collect();
        assert_eq!(String::from_utf8(sink).unwrap(), expected);
    }
}
