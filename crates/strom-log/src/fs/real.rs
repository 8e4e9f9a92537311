//! [`RealFs`]: the seam implemented with `std::fs` and positional I/O (Unix).

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::{FileHandle, FileSystem};

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile {
    file: File,
}

impl FileHandle for RealFile {
    fn read_at(&self, position: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read_at(buf, position)
    }
    fn write_at(&self, position: u64, buf: &[u8]) -> io::Result<usize> {
        self.file.write_at(buf, position)
    }
    fn write_vectored_at(&self, position: u64, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let offset = libc::off_t::try_from(position)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "position out of range"))?;
        // At most IOV_MAX (1024 on Linux) buffers per call; the caller loops.
        let count = bufs.len().min(1024);
        let count = libc::c_int::try_from(count).unwrap_or(1024);
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix (documented by std), the
        // pointer and count describe `bufs`, which outlives the call, and pwritev only
        // reads from the buffers.
        let written = unsafe {
            libc::pwritev(
                self.file.as_raw_fd(),
                bufs.as_ptr().cast::<libc::iovec>(),
                count,
                offset,
            )
        };
        usize::try_from(written).map_err(|_| io::Error::last_os_error())
    }
    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.file.set_len(len_bytes)
    }
    fn sync(&self) -> io::Result<()> {
        // fdatasync also flushes the metadata needed to read the data back (the size).
        self.file.sync_data()
    }
    fn std_file(&self) -> Option<&File> {
        Some(&self.file)
    }
    fn drop_cache(&self, position: u64, len_bytes: u64) {
        let (Ok(offset), Ok(len)) = (
            libc::off_t::try_from(position),
            libc::off_t::try_from(len_bytes),
        ) else {
            return;
        };
        // SAFETY: posix_fadvise only reads its integer arguments; the descriptor is owned by
        // `self.file` and open for the duration of the call. The advice is a hint: its
        // result (an errno value, not -1) is ignored, as there is nothing to do about it.
        let _ = unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                offset,
                len,
                libc::POSIX_FADV_DONTNEED,
            )
        };
    }
}

impl FileSystem for RealFs {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Arc::new(RealFile { file }))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Arc::new(RealFile { file }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }
    fn available_bytes(&self, dir: &Path) -> io::Result<u64> {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
        let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `name` is a NUL-terminated path that outlives the call, and `stats` points
        // to writable memory of the right type, which statvfs fills when it returns 0.
        let result = unsafe { libc::statvfs(name.as_ptr(), stats.as_mut_ptr()) };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: statvfs returned 0, so it initialised `stats`.
        let stats = unsafe { stats.assume_init() };
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        // Root may also write into the blocks reserved for it (ext4's 5% by default).
        let blocks = if root { stats.f_bfree } else { stats.f_bavail };
        // Both are narrower than u64 on 32-bit targets.
        #[allow(clippy::useless_conversion)]
        let bytes = u64::from(blocks).saturating_mul(u64::from(stats.f_frsize));
        Ok(bytes)
    }
}
