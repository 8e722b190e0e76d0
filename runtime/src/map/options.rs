//! [`MapOptions`]: how the map family cuts its input into chunks.

use crate::error::Error;

/// How the map family splits its input (Python's `chunksize`).
///
/// Items travel to the workers in chunks: one frame, one worker, many items.
/// Larger chunks cost less per item; smaller ones balance uneven work better
/// and let `imap` yield sooner. By default:
///
/// - `map_<fn>` and `map_async_<fn>`, and `imap_<fn>` /
///   `imap_unordered_<fn>` over an input whose length is known (its
///   `size_hint` is exact, as for ranges, vectors and slices), use Python's
///   `Pool.map` rule: `ceil(len / (4 × processes))`;
///   `imap`'s default is capped at 1024 items, so that a huge input (`0..u64::MAX`) does not make huge chunks
///   (Python's `imap` default is 1; ours is bounded but larger, for speed);
/// - `imap_<fn>` / `imap_unordered_<fn>` over an input of unknown length
///   (a filter, a reader, an endless iterator) use chunks of
///   16 items;
/// - `imap_<fn>` / `imap_unordered_<fn>` begin with smaller chunks than
///   these defaults, of 1, 2, 4, ... items, doubling up to the default:
///   the first result of a slow task comes back after one item's time, as
///   with Python's `imap`.
///
/// A chunk also ends early once its encoded items fill a quarter of the
/// pool's [frame limit](crate::PoolBuilder::max_frame_bytes) (for `imap`,
/// 1 MiB at most), so large items make
/// smaller chunks instead of failing with [`Error::FrameTooLarge`].
/// A chunk's results come back in one frame too, but they are not known
/// when it is cut: if they add up to more than the frame limit, every item
/// of that chunk fails with [`Error::FrameTooLarge`]. For a task whose
/// results are much larger than its arguments, set a chunk size whose
/// results fit (items × result size under the limit).
///
/// A pool's [`task_timeout`](crate::PoolBuilder::task_timeout) applies to
/// each item, not to a chunk as a whole (an item that overruns it fails
/// with the rest of its chunk, which `chunksize(1)` keeps to the one item),
/// and a chunk counts as one task for
/// [`max_tasks_per_child`](crate::PoolBuilder::max_tasks_per_child).
///
/// ```
/// use procpool::{pool_task, MapOptions, Pool};
///
/// #[pool_task]
/// fn square(x: u64) -> u64 { x * x }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     let pool = Pool::new(2)?;
///     let one_by_one = MapOptions::new().chunksize(1);
///     assert_eq!(map_square_with(&pool, 0..4, one_by_one)?, [0, 1, 4, 9]);
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapOptions {
    chunksize: Option<usize>,
}

impl MapOptions {
    /// Chunk size of `imap_<fn>` / `imap_unordered_<fn>` over an input of
    /// unknown length.
    pub(crate) const DEFAULT_UNKNOWN_LEN_CHUNKSIZE: usize = 16;

    /// The most items a default chunk of `imap_<fn>` /
    /// `imap_unordered_<fn>` holds, whatever the input's length (an explicit
    /// [`chunksize`](Self::chunksize) is used as given).
    pub(crate) const IMAP_MAX_DEFAULT_CHUNKSIZE: usize = 1024;

    /// The most encoded item bytes one chunk of `imap_<fn>` /
    /// `imap_unordered_<fn>` holds (1 MiB): a lazy map keeps few items in
    /// memory.
    pub(crate) const IMAP_MAX_CHUNK_BYTES: usize = 1 << 20;

    /// The defaults (see [`MapOptions`]).
    ///
    /// ```
    /// assert_eq!(procpool::MapOptions::new(), procpool::MapOptions::default());
    /// ```
    #[must_use = "the options do nothing until given to a `_with` map"]
    pub fn new() -> Self {
        MapOptions::default()
    }

    /// Items per chunk, at least 1 (0 makes the call fail with
    /// [`Error::Config`]).
    ///
    /// ```
    /// use procpool::{pool_task, Error, MapOptions, Pool};
    ///
    /// #[pool_task]
    /// fn double(x: u32) -> u32 { 2 * x }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = Pool::new(2)?;
    ///     // Python's map(f, xs, chunksize=3): items travel three to a frame.
    ///     assert_eq!(map_double_with(&pool, 0..5, MapOptions::new().chunksize(3))?, [0, 2, 4, 6, 8]);
    ///     let zero = map_double_with(&pool, 0..5, MapOptions::new().chunksize(0));
    ///     assert!(matches!(zero, Err(Error::Config { .. })));
    ///     Ok(())
    /// }
    /// ```
    #[must_use = "the setter returns the changed options"]
    pub fn chunksize(mut self, items: usize) -> Self {
        self.chunksize = Some(items);
        self
    }

    /// Whether the chunk size is the default one (no
    /// [`chunksize`](Self::chunksize) given).
    pub(crate) fn is_default_size(&self) -> bool {
        self.chunksize.is_none()
    }

    /// [`resolve`](Self::resolve) for `imap`: a default chunk size is capped
    /// at [`IMAP_MAX_DEFAULT_CHUNKSIZE`](Self::IMAP_MAX_DEFAULT_CHUNKSIZE).
    pub(crate) fn resolve_imap(
        &self,
        task: &str,
        len: Option<usize>,
        processes: usize,
    ) -> Result<usize, Error> {
        let size = self.resolve(task, len, processes)?;
        Ok(match self.chunksize {
            Some(_) => size,
            None => size.min(Self::IMAP_MAX_DEFAULT_CHUNKSIZE),
        })
    }

    /// How many bytes of encoded items one chunk of `map` / `map_async`
    /// may hold on a pool whose frame limit is `max_frame`: a chunk of the
    /// default size also ends at 1 MiB (as `imap`'s do), so a huge map is
    /// many chunks that flow through a bounded window instead of a few
    /// huge ones held at once; a chunk size the caller chose is kept up to
    /// [`chunk_bytes`].
    pub(crate) fn map_chunk_bytes(&self, max_frame: usize) -> usize {
        match self.chunksize {
            Some(_) => chunk_bytes(max_frame),
            None => chunk_bytes(max_frame).min(Self::IMAP_MAX_CHUNK_BYTES),
        }
    }

    /// The chunk size for an input of `len` items (`None`: unknown) on a
    /// pool of `processes` workers.
    pub(crate) fn resolve(
        &self,
        task: &str,
        len: Option<usize>,
        processes: usize,
    ) -> Result<usize, Error> {
        match (self.chunksize, len) {
            (Some(0), _) => Err(Error::Config {
                message: format!("task `{task}`: chunksize must be at least 1"),
            }),
            (Some(n), _) => Ok(n),
            (None, Some(len)) => Ok(len.div_ceil(4 * processes.max(1)).max(1)),
            (None, None) => Ok(Self::DEFAULT_UNKNOWN_LEN_CHUNKSIZE),
        }
    }
}

/// The length of `items` if its `size_hint` is exact.
pub(crate) fn exact_len(items: &impl Iterator) -> Option<usize> {
    match items.size_hint() {
        (low, Some(high)) if low == high => Some(low),
        _ => None,
    }
}

/// The most bytes one item's failure record takes in a chunk's reply once
/// the worker has cut its texts to fit the frame (`chunk::fit_failures`
/// stops at texts of 16 to 31 bytes, each followed by a note of the cut of
/// up to 51): a panic's message, location and backtrace, their lengths and
/// tags.
pub(crate) const MOST_FAILURE_RECORD: usize = 256;

/// The most items one chunk may hold on a pool whose frame limit is
/// `max_frame`, so that if every one of them fails (panics, say), their
/// records, cut to fit, take half a frame at most and each item still gets
/// its own error instead of the whole chunk failing with
/// [`Error::FrameTooLarge`]. Only a small frame limit makes this smaller
/// than a chunk otherwise is (8,388,608 items for the default 4 GiB).
pub(crate) fn failures_room(max_frame: usize) -> usize {
    (max_frame / 2 / MOST_FAILURE_RECORD).max(1)
}

/// How many bytes of encoded items a chunk may hold, for a pool whose frame
/// limit is `max_frame`: a quarter of it, so that a chunk of large items is
/// cut short instead of failing with [`Error::FrameTooLarge`] (its results
/// need room too).
pub(crate) fn chunk_bytes(max_frame: usize) -> usize {
    max_frame / crate::chunk::FRAME_OVER_CHUNK
}

#[cfg(test)]
mod tests {
    use super::MapOptions;

    #[test]
    fn default_chunksize_follows_python() {
        let default = MapOptions::new();
        // Python: chunksize, extra = divmod(len, 4 * processes); chunksize += bool(extra)
        assert_eq!(default.resolve("t", Some(200_000), 2).unwrap(), 25_000);
        assert_eq!(default.resolve("t", Some(10), 2).unwrap(), 2);
        assert_eq!(default.resolve("t", Some(1), 8).unwrap(), 1);
        assert_eq!(default.resolve("t", Some(0), 2).unwrap(), 1);
        assert_eq!(
            default.resolve("t", None, 2).unwrap(),
            MapOptions::DEFAULT_UNKNOWN_LEN_CHUNKSIZE
        );
        let seven = MapOptions::new().chunksize(7);
        assert_eq!(seven.resolve("t", Some(1000), 2).unwrap(), 7);
        assert_eq!(seven.resolve("t", None, 2).unwrap(), 7);
        assert!(MapOptions::new()
            .chunksize(0)
            .resolve("t", None, 2)
            .is_err());
    }
}
