//! The writer thread: takes batches from the queue, appends them to the
//! log, syncs the log (at once under `-sync always`, else once the oldest
//! unsynced change is an interval old), and compacts the log when it holds
//! more than one and a half times the live sessions ([`oversized`]).
//!
//! A compaction writes a new log beside the old one, a step at a time
//! between batches, so that appending never stops: the records of the old
//! log up to where the compaction began are kept only if the memory store
//! still holds that very session (tombstones are dropped, since the new
//! log holds nothing they would delete); what was appended after that is
//! copied as it is. Once the copy has caught up with the end of the old
//! log, the new log is synced and renamed over the old one.

use super::files::{create_new_log, sync_dir, Paths};
use super::queue::{wall_ms, Batch, Dropped, Op, Queue};
use super::record::{Record, FILE_HEADER};
use super::scan::{Item, Scanner};
use super::{Logger, SyncMode};
use crate::cache::MemoryStore;
use std::fs::{self, File};
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The log may exceed one and a half times the live data by this much
/// before it is compacted (so that a small store is not compacted at every
/// change).
pub const COMPACT_SLACK: u64 = 256 << 10;

/// Whether a log of `log` bytes holding `live` bytes of live records is due
/// for compaction: more than 1.5 times the live data plus
/// [`COMPACT_SLACK`]. While a compaction runs, its new log (about the live
/// data) is beside the old one, so the directory holds about 2.5 times the
/// live data at most.
pub fn oversized(log: u64, live: u64) -> bool {
    log > live.saturating_add(live / 2).saturating_add(COMPACT_SLACK)
}
/// Bytes of the old log a compaction step reads, at least.
const COMPACT_STEP: u64 = 1 << 20;
/// The longest a compaction step goes on before the writer appends what
/// has come in meanwhile.
const COMPACT_STEP_TIME: Duration = Duration::from_millis(50);
/// Bytes a compaction gathers before writing them out.
const OUT_CHUNK: usize = 1 << 20;
/// How long the writer sleeps with nothing to do (it wakes for work).
const IDLE: Duration = Duration::from_secs(1);
/// After a failure, how long before the writer tries to compact again.
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// The least time between two reports of the same trouble.
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// A batch buffer larger than this is not kept between batches.
const KEEP_BUFFER: usize = 4 << 20;

/// What the writer has done, for [`super::DurableStore::stats`].
#[derive(Debug, Default)]
pub struct Counters {
    /// The log's length.
    pub log_bytes: AtomicU64,
    /// Compactions completed.
    pub compactions: AtomicU64,
    /// Writes and syncs that failed.
    pub write_errors: AtomicU64,
}

/// Appended changes not yet synced.
#[derive(Debug)]
struct Pending {
    first: u64,
    last: u64,
    since: Instant,
}

/// A compaction under way.
#[derive(Debug)]
struct Compaction {
    /// The old log's length when it began.
    split: u64,
    /// How far the old log has been read.
    pos: u64,
    out: File,
    out_len: u64,
    out_buf: Vec<u8>,
    /// Whether it was started to bring the disk back in line with memory.
    for_divergence: bool,
}

/// What a durable store and its writer share: the sessions in memory, the
/// queue of changes between them, when changes are synced, and the
/// counters.
#[derive(Debug, Clone)]
pub struct Shared {
    pub memory: Arc<MemoryStore>,
    pub queue: Arc<Queue>,
    pub sync: SyncMode,
    pub counters: Arc<Counters>,
}

/// The writer's state; [`Writer::run`] is the thread's body.
#[derive(Debug)]
pub struct Writer {
    paths: Paths,
    file: File,
    len: u64,
    shared: Shared,
    log: Logger,
    pending: Option<Pending>,
    compaction: Option<Compaction>,
    compact_not_before: Instant,
    buf: Vec<u8>,
    reported_drops: Dropped,
    last_drop_report: Option<Instant>,
    last_report: Option<(String, Instant)>,
}

impl Writer {
    /// A writer appending to `file`, the log, `len` bytes long.
    pub fn new(paths: Paths, file: File, len: u64, shared: Shared, log: Logger) -> Writer {
        shared.counters.log_bytes.store(len, Ordering::Relaxed);
        Writer {
            paths,
            file,
            len,
            shared,
            log,
            pending: None,
            compaction: None,
            compact_not_before: Instant::now(),
            buf: Vec::new(),
            reported_drops: Dropped::default(),
            last_drop_report: None,
            last_report: None,
        }
    }

    /// Runs until the queue is closed and drained; the last changes are
    /// synced before it returns. An unfinished compaction is abandoned.
    pub fn run(mut self) {
        loop {
            let wait = self.wait_time();
            if !self.step(wait) {
                break;
            }
        }
    }

    /// One round: waits up to `wait` for changes, appends them, syncs if
    /// due, and takes a compaction step. False once the queue is closed
    /// and everything is written.
    pub fn step(&mut self, wait: Duration) -> bool {
        let (batch, closing) = self.shared.queue.take(wait);
        let drained = batch.ops.is_empty();
        let appended = self.append(batch);
        self.sync_if_due(closing);
        if closing && drained {
            self.abandon_compaction();
            return false;
        }
        self.compact(appended);
        self.report_drops();
        true
    }

    fn wait_time(&self) -> Duration {
        if self.compaction.is_some() {
            return Duration::ZERO;
        }
        match (&self.pending, self.shared.sync) {
            (Some(p), SyncMode::Interval(every)) => every.saturating_sub(p.since.elapsed()),
            (Some(_), SyncMode::Always) => Duration::ZERO,
            (None, _) => IDLE,
        }
    }

    /// Appends the batch to the log; returns the bytes written.
    fn append(&mut self, batch: Batch) -> u64 {
        if batch.ops.is_empty() {
            return 0;
        }
        self.buf.clear();
        for op in &batch.ops {
            op_record(op).encode(&mut self.buf);
        }
        let written = self.buf.len() as u64;
        let result = self.file.write_all(&self.buf);
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::new();
        }
        match result {
            Ok(()) => {
                self.len += written;
                self.shared
                    .counters
                    .log_bytes
                    .store(self.len, Ordering::Relaxed);
                let since = Instant::now();
                let p = self.pending.get_or_insert(Pending {
                    first: batch.first,
                    last: batch.last,
                    since,
                });
                p.last = batch.last;
                written
            }
            Err(e) => {
                self.trouble(format!(
                    "can't write to '{}': {e}; sessions added now may be missing after a restart",
                    self.paths.log.display()
                ));
                // Cut off a partial record, if the write left one.
                let _ = self.file.set_len(self.len);
                // Settle the batches before this one first: receipts are
                // reported in order.
                self.sync_if_due(true);
                self.shared.queue.finish(batch.first, batch.last, false);
                self.shared.queue.mark_diverged();
                0
            }
        }
    }

    /// Syncs the log if the oldest unsynced change is due (or `now`).
    fn sync_if_due(&mut self, now: bool) {
        let Some(p) = &self.pending else {
            return;
        };
        let due = match self.shared.sync {
            SyncMode::Always => true,
            SyncMode::Interval(every) => now || p.since.elapsed() >= every,
        };
        if !due {
            return;
        }
        let (first, last) = (p.first, p.last);
        self.pending = None;
        let ok = match self.file.sync_data() {
            Ok(()) => true,
            Err(e) => {
                self.trouble(format!(
                    "can't sync '{}': {e}; recent sessions may be missing after a crash",
                    self.paths.log.display()
                ));
                self.shared.queue.mark_diverged();
                false
            }
        };
        self.shared.queue.finish(first, last, ok);
    }

    /// Starts a compaction when one is due, and takes a step of the one
    /// under way; `appended` bytes were just appended. A step reads twice
    /// what was appended (at least COMPACT_STEP), so that the copy gains
    /// on the end of the log, unless it takes longer than
    /// COMPACT_STEP_TIME.
    fn compact(&mut self, appended: u64) {
        if self.compaction.is_none() && !self.start_compaction() {
            return;
        }
        if let Err(e) = self.compact_step(COMPACT_STEP.max(2 * appended)) {
            self.trouble(format!(
                "compaction of '{}' failed: {e}; will try again",
                self.paths.log.display()
            ));
            self.abandon_compaction();
            self.compact_not_before = Instant::now() + RETRY_AFTER;
        }
    }

    fn start_compaction(&mut self) -> bool {
        if Instant::now() < self.compact_not_before {
            return false;
        }
        if !oversized(self.len, self.shared.queue.live_bytes()) && !self.shared.queue.is_diverged()
        {
            return false;
        }
        let for_divergence = self.shared.queue.take_diverged();
        match create_new_log(&self.paths.new_log) {
            Ok(out) => {
                self.compaction = Some(Compaction {
                    split: self.len,
                    pos: FILE_HEADER.len() as u64,
                    out,
                    out_len: FILE_HEADER.len() as u64,
                    out_buf: Vec::new(),
                    for_divergence,
                });
                true
            }
            Err(e) => {
                self.trouble(format!(
                    "can't create '{}': {e}; will try again",
                    self.paths.new_log.display()
                ));
                if for_divergence {
                    self.shared.queue.mark_diverged();
                }
                self.compact_not_before = Instant::now() + RETRY_AFTER;
                false
            }
        }
    }

    fn compact_step(&mut self, step: u64) -> io::Result<()> {
        let Writer {
            file,
            len,
            shared: Shared { memory, .. },
            compaction,
            ..
        } = self;
        let Some(c) = compaction.as_mut() else {
            return Ok(());
        };
        let now = wall_ms();
        let started = Instant::now();
        let mut scanner = Scanner::new(&*file, c.pos, *len);
        let stop = c.pos.saturating_add(step);
        while scanner.offset() < stop && started.elapsed() < COMPACT_STEP_TIME {
            let Some(item) = scanner.next_item()? else {
                break;
            };
            if let Item::Record {
                offset,
                raw,
                record,
            } = item
            {
                let keep = offset >= c.split
                    || match record {
                        Record::Put {
                            id,
                            data,
                            expires_ms,
                            ..
                        } => expires_ms > now && memory.holds(id, data),
                        Record::Remove { .. } => false,
                    };
                if keep {
                    c.out_buf.extend_from_slice(raw);
                }
            }
            // Damaged bytes are left behind.
            if c.out_buf.len() >= OUT_CHUNK {
                c.out.write_all(&c.out_buf)?;
                c.out_len += c.out_buf.len() as u64;
                c.out_buf.clear();
            }
        }
        c.pos = scanner.offset();
        if c.pos < *len {
            return Ok(());
        }
        // Caught up: everything appended so far is in the new log.
        c.out.write_all(&c.out_buf)?;
        c.out_len += c.out_buf.len() as u64;
        c.out_buf = Vec::new();
        c.out.sync_data()?;
        fs::rename(&self.paths.new_log, &self.paths.log)?;
        if let Some(c) = self.compaction.take() {
            self.file = c.out;
            self.len = c.out_len;
        }
        self.shared
            .counters
            .log_bytes
            .store(self.len, Ordering::Relaxed);
        self.shared
            .counters
            .compactions
            .fetch_add(1, Ordering::Relaxed);
        if let Err(e) = sync_dir(&self.paths.dir) {
            // The old log or the new one is in place, both complete.
            self.trouble(format!(
                "can't sync directory '{}': {e}",
                self.paths.dir.display()
            ));
        }
        // What was appended but not yet synced is synced in the new log.
        if let Some(p) = self.pending.take() {
            self.shared.queue.finish(p.first, p.last, true);
        }
        Ok(())
    }

    fn abandon_compaction(&mut self) {
        if let Some(c) = self.compaction.take() {
            drop(c.out);
            let _ = fs::remove_file(&self.paths.new_log);
            if c.for_divergence {
                self.shared.queue.mark_diverged();
            }
        }
    }

    /// Logs that the queue dropped changes, at most every REPORT_EVERY.
    fn report_drops(&mut self) {
        let now = self.shared.queue.dropped();
        if now == self.reported_drops {
            return;
        }
        if self
            .last_drop_report
            .is_some_and(|at| at.elapsed() < REPORT_EVERY)
        {
            return;
        }
        let line = format!(
            "the writer fell behind: {} sessions added and {} removed were not written to disk (in all {} and {})",
            now.puts - self.reported_drops.puts,
            now.removes - self.reported_drops.removes,
            now.puts,
            now.removes,
        );
        self.reported_drops = now;
        self.last_drop_report = Some(Instant::now());
        self.log.warn(&line);
    }

    /// Counts a failure and logs it, unless the same was logged recently.
    fn trouble(&mut self, line: String) {
        self.shared
            .counters
            .write_errors
            .fetch_add(1, Ordering::Relaxed);
        let repeat = self
            .last_report
            .as_ref()
            .is_some_and(|(m, at)| *m == line && at.elapsed() < REPORT_EVERY);
        if !repeat {
            self.log.warn(&line);
            self.last_report = Some((line, Instant::now()));
        }
    }
}

fn op_record(op: &Op) -> Record<'_> {
    match op {
        Op::Put {
            id,
            data,
            expires_ms,
            added_ms,
        } => Record::Put {
            id,
            data,
            expires_ms: *expires_ms,
            added_ms: *added_ms,
        },
        Op::Remove { id, at_ms } => Record::Remove { id, at_ms: *at_ms },
    }
}
