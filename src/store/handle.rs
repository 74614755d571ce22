//! The entries of a size class's handle table: where a handle's object
//! is now (span, slot, length) and which generation of the entry is live,
//! packed into one word and 16 bits beside it. `class.rs` owns the table
//! and the rules of generations (reuse oldest first, retire a spent id);
//! this file owns the format, and the bounds it sets: 2^21 spans a class,
//! 2^12 slots a span, objects under 32 KiB, 2^28 generations.

// Entry layout: len (15 bits; 0 = free) | slot (12) | span (21) | the
// generation's low 16 bits; its high bits sit in `Inner::gen_hi`.
const LEN_BITS: u32 = 15;
pub(super) const SLOT_BITS: u32 = 12;
pub(super) const SPAN_BITS: u32 = 21;
pub(super) const MAX_SPANS: usize = 1 << SPAN_BITS;

/// Bits of a handle's generation.
pub(super) const GEN_BITS: u32 = 28;
/// Bits of a handle's id (its index in the class's handle table).
pub(super) const ID_BITS: u32 = 28;
/// A generation never handed out: the id is retired.
pub(super) const RETIRED: u32 = (1 << GEN_BITS) - 1;

/// One entry of the table, unpacked (`len` 0: the id is free).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) len: u32,
    pub(super) slot: u32,
    pub(super) span: u32,
    pub(super) gen: u32,
}

impl Entry {
    /// The packed word; the generation's high bits go to `gen_hi`.
    pub(super) fn pack(self) -> (u64, u16) {
        let word = u64::from(self.len)
            | u64::from(self.slot) << LEN_BITS
            | u64::from(self.span) << (LEN_BITS + SLOT_BITS)
            | u64::from(self.gen & 0xffff) << (LEN_BITS + SLOT_BITS + SPAN_BITS);
        (word, (self.gen >> 16) as u16)
    }

    pub(super) fn unpack(v: u64, hi: u16) -> Self {
        let mask = |bits: u32| (1u64 << bits) - 1;
        Entry {
            len: (v & mask(LEN_BITS)) as u32,
            slot: (v >> LEN_BITS & mask(SLOT_BITS)) as u32,
            span: (v >> (LEN_BITS + SLOT_BITS) & mask(SPAN_BITS)) as u32,
            gen: (v >> (LEN_BITS + SLOT_BITS + SPAN_BITS)) as u32 | u32::from(hi) << 16,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let e = Entry {
            len: 16384,
            slot: 4095,
            span: (MAX_SPANS - 1) as u32,
            gen: RETIRED,
        };
        let (word, hi) = e.pack();
        assert_eq!(Entry::unpack(word, hi), e);
    }
}
