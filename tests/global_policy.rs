//! The process-wide policy. This file is its own test binary (its own process), so no other test
//! touches the global. Its tests still run on parallel threads, so each one holds `LOCK` and
//! restores the value it found (also when it panics).

use std::collections::HashSet;
use std::sync::{Barrier, Mutex, MutexGuard};
use std::thread;

use mixprec::layers::AnyDense;
use mixprec::policy::{DefaultPolicy, Policy};
use mixprec::{bf16, global_policy, set_global_policy, DTypePolicy, Error, Tensor};

static LOCK: Mutex<()> = Mutex::new(());

/// Serializes the tests of this file and puts the global back as it was on drop.
struct Exclusive {
    before: DTypePolicy,
    _lock: MutexGuard<'static, ()>,
}

fn exclusive() -> Exclusive {
    let lock = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    Exclusive {
        before: global_policy(),
        _lock: lock,
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        set_global_policy(self.before).expect("a DTypePolicy is always accepted");
    }
}

#[test]
fn global_starts_as_the_default_policy() {
    let _g = exclusive();
    // Every test restores the global, so this holds whichever test ran first.
    assert_eq!(global_policy(), DefaultPolicy::RUNTIME);
    #[cfg(not(any(
        feature = "default-policy-f64",
        feature = "default-policy-f16",
        feature = "default-policy-bf16",
        feature = "default-policy-mixed-f16",
        feature = "default-policy-mixed-bf16",
    )))]
    assert_eq!(global_policy(), DTypePolicy::Float32);
}

#[test]
fn set_by_name_and_by_value_returns_previous() {
    let _g = exclusive();
    let start = global_policy();
    assert_eq!(set_global_policy("mixed_bfloat16").unwrap(), start);
    assert_eq!(global_policy(), DTypePolicy::MixedBFloat16);
    assert_eq!(
        set_global_policy(DTypePolicy::Float64).unwrap(),
        DTypePolicy::MixedBFloat16
    );
    assert_eq!(global_policy(), DTypePolicy::Float64);
    assert_eq!(
        set_global_policy(String::from("float16")).unwrap(),
        DTypePolicy::Float64
    );
    let name = String::from("mixed_float16");
    set_global_policy(&name).unwrap();
    assert_eq!(global_policy(), DTypePolicy::MixedFloat16);
    for p in DTypePolicy::ALL {
        set_global_policy(p.name()).unwrap();
        assert_eq!(global_policy(), p);
    }
}

#[test]
fn set_rejects_bad_name_and_leaves_global_unchanged() {
    let _g = exclusive();
    set_global_policy(DTypePolicy::BFloat16).unwrap();
    for bad in ["mixed_fp16", "", "Float32", "bfloat16 "] {
        let err = set_global_policy(bad).unwrap_err();
        assert!(
            matches!(&err, Error::ParsePolicy(e) if e.found() == bad),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        assert_eq!(global_policy(), DTypePolicy::BFloat16, "after {bad:?}");
    }
}

#[test]
fn concurrent_set_and_get_see_only_written_values_and_keep_the_last_write() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 2_000;
    let _g = exclusive();
    // During the rounds the threads write only these two; each then writes one final value that
    // nobody else ever writes, so where a final value went is traceable.
    let churn = [DTypePolicy::Float16, DTypePolicy::BFloat16];
    let finals = [
        DTypePolicy::Float64,
        DTypePolicy::MixedFloat16,
        DTypePolicy::MixedBFloat16,
        DTypePolicy::Float32,
    ];
    let written: HashSet<DTypePolicy> = churn.iter().chain(&finals).copied().collect();
    set_global_policy(churn[0]).unwrap();
    let barrier = Barrier::new(THREADS);
    let previous: Vec<Vec<DTypePolicy>> = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (barrier, written) = (&barrier, &written);
                s.spawn(move || {
                    let mut seen_previous = Vec::with_capacity(ROUNDS + 1);
                    barrier.wait();
                    for i in 0..ROUNDS {
                        let p = churn[(i + t) % 2];
                        // Alternate the two ways of setting it.
                        let prev = if i % 2 == 0 {
                            set_global_policy(p)
                        } else {
                            set_global_policy(p.name())
                        };
                        seen_previous.push(prev.unwrap());
                        let now = global_policy();
                        assert!(written.contains(&now), "read {now}, which nobody wrote");
                    }
                    seen_previous.push(set_global_policy(finals[t]).unwrap());
                    seen_previous
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let previous: Vec<DTypePolicy> = previous.into_iter().flatten().collect();
    assert!(previous.iter().all(|p| written.contains(p)));
    // Each final value is written once. Every final write but the last was overwritten, and the
    // write that overwrote it returned it as "previous"; the last one is what the global holds.
    let overwritten: HashSet<DTypePolicy> = previous.into_iter().collect();
    let survivors: Vec<DTypePolicy> = finals
        .into_iter()
        .filter(|f| !overwritten.contains(f))
        .collect();
    assert_eq!(survivors, vec![global_policy()]);
}

#[test]
fn any_dense_captures_the_global_at_construction() {
    let _g = exclusive();
    set_global_policy("mixed_bfloat16").unwrap();
    let dense = AnyDense::new(3, 2).unwrap();
    set_global_policy("float16").unwrap();
    let later = AnyDense::new(3, 2).unwrap();
    assert_eq!(dense.policy(), DTypePolicy::MixedBFloat16);
    assert_eq!(later.policy(), DTypePolicy::Float16);
    set_global_policy("float64").unwrap();
    assert_eq!(dense.policy(), DTypePolicy::MixedBFloat16);
    // It still computes in bf16: every output is a bf16 value.
    let x = Tensor::from_vec(vec![1, 3], vec![0.1f32, 0.2, 0.3]).unwrap();
    let y = dense.call_f32(&x).unwrap();
    assert!(y
        .as_slice()
        .iter()
        .all(|&v| bf16::from_f32(v).to_f32() == v));
    assert!(y.as_slice().iter().any(|&v| v != 0.0));
}
