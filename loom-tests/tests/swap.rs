//! Loom models of the swap layer's slot pins, on the real `SwapArea`: the
//! guarantee zswap's writeback leans on is that a slot freed while pinned is
//! released exactly once, and only when the pin goes.
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use zswap::{AreaId, SwapArea};
use zswap_loom_tests::model;

/// A pin racing the slot's free: the slot returns to the free stack once,
/// never while pinned.
#[test]
fn pin_vs_free() {
    model("pin_vs_free", || {
        let area = Arc::new(SwapArea::new(AreaId::new(0), 1).unwrap());
        let slot = area.alloc().unwrap();
        let pinner = {
            let area = area.clone();
            thread::spawn(move || {
                if let Some(pin) = area.try_pin(slot.offset) {
                    // While pinned, the slot cannot be handed out again.
                    assert!(area.alloc().is_none());
                    drop(pin);
                }
            })
        };
        area.free(slot.offset).unwrap();
        pinner.join().unwrap();
        assert_eq!(area.free_slots(), 1);
        assert_eq!(area.alloc(), Some(slot));
        assert!(area.alloc().is_none());
    });
}

/// Two would-be holders: never both at once.
#[test]
fn one_pin_at_a_time() {
    model("one_pin_at_a_time", || {
        let area = Arc::new(SwapArea::new(AreaId::new(0), 1).unwrap());
        let slot = area.alloc().unwrap();
        let held = Arc::new(AtomicBool::new(false));
        let spawn = || {
            let (area, held) = (area.clone(), held.clone());
            thread::spawn(move || {
                if let Some(pin) = area.try_pin(slot.offset) {
                    assert!(!held.swap(true, Ordering::SeqCst), "two holders");
                    held.store(false, Ordering::SeqCst);
                    drop(pin);
                }
            })
        };
        let (a, b) = (spawn(), spawn());
        a.join().unwrap();
        b.join().unwrap();
        assert!(area.is_allocated(slot.offset));
        assert!(area.try_pin(slot.offset).is_some());
    });
}

/// The leak tracker has teeth: a pin that is never dropped is reported as
/// a leaked allocation when its area goes.
#[test]
#[should_panic]
fn forgotten_pin_is_a_leak() {
    loom::model(|| {
        let area = SwapArea::new(AreaId::new(0), 1).unwrap();
        let slot = area.alloc().unwrap();
        std::mem::forget(area.try_pin(slot.offset).unwrap());
    });
}
