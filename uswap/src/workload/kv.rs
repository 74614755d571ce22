//! The key-value workload: an open-addressing hash table (linear probing)
//! of 128-byte records filling the tenant's region, 70% full, read and
//! updated with zipfian keys (θ = 0.99, ranks scrambled over the keys as
//! YCSB does, so hot records are spread over many pages).
//!
//! A record is `key + 1` (0: empty), a version, 104 bytes of text-like
//! payload and a checksum over the rest seeded by its slot, so a record
//! read from the wrong page or slot fails its checksum. The thread keeps
//! each key's slot and version on the side (8 bytes a key, in its own
//! heap, in both the resident and the swapped run): a lost update shows
//! as an old version.

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{checksum, fill_text, le_u64, mix64, Ctx, Workload};

const REC: usize = 128;
const PAYLOAD: usize = 104;

/// The YCSB zipfian generator (Gray et al., "Quickly generating
/// billion-record synthetic databases"): O(n) set-up, O(1) a draw.
#[derive(Debug)]
pub struct Zipf {
    n: f64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipf {
    /// Ranks 0..n, skew `theta` (0 < θ < 1).
    pub fn new(n: u64, theta: f64) -> Zipf {
        let zetan: f64 = (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum();
        let zeta2 = 1.0 + 0.5f64.powf(theta);
        let nf = n as f64;
        Zipf {
            n: nf,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta: (1.0 - (2.0 / nf).powf(1.0 - theta)) / (1.0 - zeta2 / zetan),
        }
    }

    /// The rank for a uniform `u` in [0, 1): 0 is the hottest.
    pub fn rank(&self, u: f64) -> u64 {
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let r = self.n * (self.eta * u - self.eta + 1.0).powf(self.alpha);
        (r as u64).min(self.n as u64 - 1)
    }
}

/// The key-value table.
pub struct Kv {
    slots: usize,
    keys: usize,
    /// Per key: its slot and its current version.
    shadow: Vec<(u32, u32)>,
    zipf: Zipf,
    rng: Xoshiro256PlusPlus,
    write_percent: u32,
    rec: [u8; REC],
}

impl Kv {
    /// A table over `pages` pages; `write_percent` of operations update.
    pub fn new(pages: usize, seed: u64, write_percent: u32) -> Kv {
        let slots = pages * zswap::PAGE_SIZE / REC;
        let keys = (slots * 7 / 10).max(1);
        Kv {
            slots,
            keys,
            shadow: vec![(0, 0); keys],
            zipf: Zipf::new(keys as u64, 0.99),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            write_percent,
            rec: [0; REC],
        }
    }

    fn home(&self, key: usize) -> usize {
        (mix64(key as u64 ^ 0x5bd1_e995) % self.slots as u64) as usize
    }

    /// Builds a record for `key` (None: empty) at `slot` in `self.rec`.
    fn build(&mut self, slot: usize, key: Option<usize>, version: u32) {
        let k = key.map_or(0, |k| k as u64 + 1);
        self.rec[0..8].copy_from_slice(&k.to_le_bytes());
        self.rec[8..16].copy_from_slice(&u64::from(version).to_le_bytes());
        fill_text(
            &mut self.rec[16..16 + PAYLOAD],
            k << 32 | u64::from(version),
        );
        let c = checksum(&self.rec[..REC - 8], slot as u64);
        self.rec[REC - 8..].copy_from_slice(&c.to_le_bytes());
    }

    fn write(&mut self, ctx: &mut Ctx, slot: usize) {
        ctx.bytes(slot * REC, REC).copy_from_slice(&self.rec);
    }

    fn read(&mut self, ctx: &mut Ctx, slot: usize) -> Result<u64, ()> {
        self.rec.copy_from_slice(ctx.bytes(slot * REC, REC));
        if checksum(&self.rec[..REC - 8], slot as u64) != le_u64(&self.rec, REC - 8) {
            return Err(());
        }
        Ok(le_u64(&self.rec, 0))
    }
}

impl Workload for Kv {
    fn init(&mut self, ctx: &mut Ctx) {
        for slot in 0..self.slots {
            ctx.touch(slot * REC);
            self.build(slot, None, 0);
            self.write(ctx, slot);
        }
        for key in 0..self.keys {
            let mut slot = self.home(key);
            loop {
                ctx.touch(slot * REC);
                let k = le_u64(ctx.bytes(slot * REC, 8), 0);
                if k == 0 {
                    break;
                }
                slot = (slot + 1) % self.slots;
            }
            self.build(slot, Some(key), 1);
            self.write(ctx, slot);
            self.shadow[key] = (slot as u32, 1);
        }
    }

    fn fault_floor(&self, resident: usize) -> Option<f64> {
        // Each page's share of the lookups: the zipf probability of every
        // rank, on the key it scrambles to, on the page that key's record
        // lives in (lookups that probe past it are few and ignored).
        let pages = self.slots * REC / zswap::PAGE_SIZE;
        let mut weight = vec![0.0f64; pages];
        for rank in 0..self.keys as u64 {
            let key = (mix64(rank) % self.keys as u64) as usize;
            let page = self.shadow[key].0 as usize * REC / zswap::PAGE_SIZE;
            weight[page] += 1.0 / ((rank + 1) as f64).powf(self.zipf.theta) / self.zipf.zetan;
        }
        weight.sort_by(|a, b| b.total_cmp(a));
        Some((1.0 - weight.iter().take(resident).sum::<f64>()).max(0.0))
    }

    fn op(&mut self, ctx: &mut Ctx) {
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let rank = self.zipf.rank(u);
        let key = (mix64(rank) % self.keys as u64) as usize;
        let update = (self.rng.next_u64() % 100) < u64::from(self.write_percent);
        let (want_slot, version) = self.shadow[key];
        let mut slot = self.home(key);
        for _ in 0..self.slots {
            ctx.touch(slot * REC);
            match self.read(ctx, slot) {
                Err(()) => {
                    ctx.content_error(|| format!("kv: record at slot {slot} fails its checksum"));
                    return;
                }
                Ok(0) => {
                    ctx.content_error(|| {
                        format!("kv: key {key} not found (hit an empty slot {slot})")
                    });
                    return;
                }
                Ok(k) if k == key as u64 + 1 => {
                    let v = le_u64(&self.rec, 8);
                    if slot != want_slot as usize || v != u64::from(version) {
                        ctx.content_error(|| {
                            format!("kv: key {key} at slot {slot} version {v}, expected slot {want_slot} version {version} (a lost update)")
                        });
                        return;
                    }
                    if update {
                        self.build(slot, Some(key), version + 1);
                        self.write(ctx, slot);
                        self.shadow[key].1 = version + 1;
                    }
                    return;
                }
                Ok(_) => slot = (slot + 1) % self.slots,
            }
        }
        ctx.content_error(|| format!("kv: key {key} not found in the whole table"));
    }
}

#[cfg(test)]
mod tests {
    use super::Zipf;

    /// The generator is skewed as θ = 0.99 says: rank 0 draws about
    /// 1/ζ(n) of the time.
    #[test]
    fn zipf_rank_zero_has_its_share() {
        let z = Zipf::new(10_000, 0.99);
        let n = 200_000;
        let mut zero = 0;
        let mut x = 1u64;
        for _ in 0..n {
            x = super::mix64(x);
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            let r = z.rank(u);
            assert!(r < 10_000);
            if r == 0 {
                zero += 1;
            }
        }
        let share = zero as f64 / n as f64;
        let expect = 1.0 / z.zetan;
        assert!(
            (share - expect).abs() < 0.01,
            "share {share}, expected {expect}"
        );
    }
}
