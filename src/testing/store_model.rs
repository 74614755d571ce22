//! A sequential model of [`ZsPool`] (handle → bytes) and a harness that
//! runs an operation against both and compares every live object, the
//! footprint and the counters after each step. Driven by the proptest state
//! machine (`tests/store_model.rs`) and the `store_ops` fuzz target.

use crate::{Error, Handle, PoolConfig, ZsPool};

/// One operation; indices pick among live (or freed) handles modulo count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// `insert` of `len` bytes made from `seed`.
    Insert { len: u16, seed: u8 },
    /// `alloc(len)`, then read back as zeros.
    Alloc { len: u16 },
    /// `write` new bytes to a live object (of its own length, or one off).
    Write { pick: u8, seed: u8, wrong_len: bool },
    /// `read` a live object.
    Read { pick: u8 },
    /// `free` a live object.
    Free { pick: u8 },
    /// `free` or `read` a handle already freed: must be `BadHandle`.
    Stale { pick: u8, read: bool },
    /// `compact()`.
    Compact,
    /// `shrink_cache()`.
    ShrinkCache,
}

/// The real pool and the model side by side.
pub struct StoreHarness {
    pool: ZsPool,
    live: Vec<(Handle, Vec<u8>)>,
    freed: Vec<Handle>,
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    // Runs of repeated bytes with changes, like compressed output is not,
    // but enough to catch misplaced copies.
    (0..len)
        .map(|i| seed.wrapping_add((i / 3) as u8).wrapping_mul(31))
        .collect()
}

impl StoreHarness {
    /// A harness over a pool shaped by `cfg`.
    pub fn new(cfg: PoolConfig) -> Self {
        StoreHarness {
            pool: ZsPool::new(cfg).expect("valid config"),
            live: Vec::new(),
            freed: Vec::new(),
        }
    }

    /// A small-page pool (256-byte pages, 2-page spans) where spans fill and
    /// compaction has work after a few dozen operations.
    pub fn small() -> Self {
        Self::new(PoolConfig {
            page_size: 256,
            max_span_pages: 2,
            cached_spans_per_class: 1,
        })
    }

    fn len(&self, raw: u16) -> usize {
        // 0 and page+1 are in range so the errors are exercised.
        usize::from(raw) % (self.pool.config().page_size + 2)
    }

    /// Applies `op` and compares; `Err` describes the first difference.
    pub fn apply(&mut self, op: &StoreOp) -> Result<(), String> {
        self.step(op)
            .and_then(|()| self.compare())
            .map_err(|e| format!("after {op:?}: {e}"))
    }

    fn step(&mut self, op: &StoreOp) -> Result<(), String> {
        let page = self.pool.config().page_size;
        match *op {
            StoreOp::Insert { len, seed } => {
                let len = self.len(len);
                let data = bytes(len, seed);
                match self.pool.insert(&data) {
                    Ok(h) => {
                        check(len >= 1 && len <= page, "insert accepted a bad length")?;
                        self.live.push((h, data));
                    }
                    Err(Error::ObjectSize(n)) if n == len && (len == 0 || len > page) => {}
                    Err(e) => return Err(format!("insert({len}): {e}")),
                }
            }
            StoreOp::Alloc { len } => {
                let len = self.len(len);
                match self.pool.alloc(len) {
                    Ok(h) => {
                        // Fresh objects read as zeros only the first time a
                        // slot is used; a reused slot holds old bytes, as in
                        // zsmalloc. Write zeros to make the model exact.
                        self.pool
                            .write(h, &vec![0; len])
                            .map_err(|e| e.to_string())?;
                        self.live.push((h, vec![0; len]));
                    }
                    Err(Error::ObjectSize(n)) if n == len && (len == 0 || len > page) => {}
                    Err(e) => return Err(format!("alloc({len}): {e}")),
                }
            }
            StoreOp::Write {
                pick,
                seed,
                wrong_len,
            } => {
                let Some(i) = pick_index(pick, self.live.len()) else {
                    return Ok(());
                };
                let (h, old) = &mut self.live[i];
                let len = if wrong_len { old.len() + 1 } else { old.len() };
                let data = bytes(len, seed);
                match self.pool.write(*h, &data) {
                    Ok(()) if !wrong_len => *old = data,
                    Err(Error::ObjectSize(n)) if wrong_len && n == len => {}
                    other => return Err(format!("write: {other:?}")),
                }
            }
            StoreOp::Read { pick } => {
                let Some(i) = pick_index(pick, self.live.len()) else {
                    return Ok(());
                };
                let (h, want) = &self.live[i];
                let mut buf = vec![0u8; page];
                let n = self
                    .pool
                    .read_into(*h, &mut buf)
                    .map_err(|e| e.to_string())?;
                check(&buf[..n] == want.as_slice(), "read returned other bytes")?;
                if n > 0 {
                    let short = self.pool.read_into(*h, &mut buf[..n - 1]);
                    check(short == Err(Error::ObjectSize(n)), "short buffer accepted")?;
                }
            }
            StoreOp::Free { pick } => {
                let Some(i) = pick_index(pick, self.live.len()) else {
                    return Ok(());
                };
                let (h, data) = self.live.swap_remove(i);
                let n = self.pool.free(h).map_err(|e| e.to_string())?;
                check(n == data.len(), "free returned another length")?;
                self.freed.push(h);
            }
            StoreOp::Stale { pick, read } => {
                let Some(i) = pick_index(pick, self.freed.len()) else {
                    return Ok(());
                };
                let h = self.freed[i];
                let r = if read {
                    self.pool.len_of(h)
                } else {
                    self.pool.free(h)
                };
                check(r == Err(Error::BadHandle), "stale handle accepted")?;
            }
            StoreOp::Compact => {
                let before = self.pool.footprint();
                let freed = self.pool.compact();
                check(before - freed == self.pool.footprint(), "compact's return")?;
            }
            StoreOp::ShrinkCache => {
                self.pool.shrink_cache();
            }
        }
        Ok(())
    }

    fn compare(&self) -> Result<(), String> {
        let mut buf = vec![0u8; self.pool.config().page_size];
        for (h, want) in &self.live {
            let n = self
                .pool
                .read_into(*h, &mut buf)
                .map_err(|e| e.to_string())?;
            check(&buf[..n] == want.as_slice(), "a live object changed")?;
        }
        let s = self.pool.stats();
        let live_bytes: usize = self.live.iter().map(|(_, d)| d.len()).sum();
        check(s.objects == self.live.len(), "object count")?;
        check(s.bytes_used == live_bytes, "bytes_used")?;
        check(s.footprint >= live_bytes, "footprint below live bytes")?;
        check(
            s.footprint == self.pool.recount_footprint(),
            "footprint drifted",
        )?;
        let per_class: usize = self.pool.class_stats().iter().map(|c| c.objects).sum();
        check(per_class == self.live.len(), "class object counts")?;
        Ok(())
    }

    /// After freeing everything, the pool holds at most its span caches.
    pub fn drain(&mut self) -> Result<(), String> {
        for (h, _) in std::mem::take(&mut self.live) {
            self.pool.free(h).map_err(|e| e.to_string())?;
        }
        self.pool.shrink_cache();
        check(self.pool.footprint() == 0, "footprint after draining")
    }

    /// The pool under test.
    pub fn pool(&self) -> &ZsPool {
        &self.pool
    }
}

fn pick_index(pick: u8, n: usize) -> Option<usize> {
    (n > 0).then(|| usize::from(pick) % n)
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what.to_owned())
    }
}

/// Decodes fuzzer bytes into operations (tag byte, then fields).
pub fn decode_ops(data: &[u8]) -> Vec<StoreOp> {
    let mut it = data.iter().copied();
    let mut ops = Vec::new();
    while let Some(tag) = it.next() {
        let mut b = || it.next().unwrap_or(0);
        ops.push(match tag % 10 {
            0..=2 => StoreOp::Insert {
                len: u16::from_le_bytes([b(), b()]),
                seed: b(),
            },
            3 => StoreOp::Alloc {
                len: u16::from_le_bytes([b(), b()]),
            },
            4 => {
                let (pick, seed, w) = (b(), b(), b());
                StoreOp::Write {
                    pick,
                    seed,
                    wrong_len: w % 8 == 0,
                }
            }
            5 => StoreOp::Read { pick: b() },
            6 | 7 => StoreOp::Free { pick: b() },
            8 => {
                let (pick, r) = (b(), b());
                StoreOp::Stale {
                    pick,
                    read: r % 2 == 0,
                }
            }
            _ => {
                if b() % 4 == 0 {
                    StoreOp::ShrinkCache
                } else {
                    StoreOp::Compact
                }
            }
        });
    }
    ops
}

/// The `store_ops` fuzz target's body: at most 1024 operations on a
/// small-page pool, then a full drain.
pub fn run_bytes(data: &[u8]) {
    let mut h = StoreHarness::small();
    for op in decode_ops(data).iter().take(1024) {
        if let Err(e) = h.apply(op) {
            panic!("ZsPool diverged from the model: {e}");
        }
    }
    if let Err(e) = h.drain() {
        panic!("ZsPool drain: {e}");
    }
}
