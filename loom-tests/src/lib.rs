//! Loom models live in `tests/`; build them with `RUSTFLAGS="--cfg loom"`.
