use super::*;
use crate::policy::{Bf16, MixedBf16, MixedF16, F32, F64};
use crate::Element;

fn ramp<C: Element>(n: usize) -> Tensor<C> {
    let v = (0..n)
        .map(|i| C::from_f64_rne(0.25 + (i % 97) as f64 * 0.37))
        .collect();
    Tensor::from_vec(vec![n / 8, 8], v).unwrap()
}

/// Kept elements are `x / (1 − rate)` within the compute type's unit roundoff, dropped ones 0,
/// and the kept share is within 6σ of `1 − rate` (deterministic: the mask is a pure function).
fn check_policy<P: Policy>(rate: f64) -> Result<()> {
    let x = ramp::<P::Compute>(1 << 16);
    let mut layer = Dropout::<P>::with_seed(rate, 11)?;
    let y = layer.train_forward(x.clone())?;
    let u = <P::Compute as Element>::UNIT_ROUNDOFF;
    let mut kept = 0usize;
    for (i, (&a, &b)) in x.as_slice().iter().zip(y.as_slice()).enumerate() {
        let want = a.as_f64() / (1.0 - rate);
        if layer.keeps(0, i) {
            kept += 1;
            assert!(
                (b.as_f64() - want).abs() <= u * want.abs(),
                "{}: element {i}: {} against {want}",
                P::RUNTIME,
                b.as_f64()
            );
        } else {
            assert_eq!(b.as_f64(), 0.0, "element {i} was dropped");
        }
    }
    let n = x.len() as f64;
    let sigma = (rate * (1.0 - rate) / n).sqrt();
    let share = kept as f64 / n;
    assert!(
        (share - (1.0 - rate)).abs() <= 6.0 * sigma,
        "kept {share}, rate {rate}"
    );
    // The backward pass applies the same mask and scale to dy.
    let dx = layer.backward(x, true)?.unwrap();
    assert_eq!(dx, y);
    Ok(())
}

#[test]
fn keeps_one_minus_rate_scaled_in_every_policy() -> Result<()> {
    for rate in [0.1, 0.5, 0.8] {
        check_policy::<F32>(rate)?;
        check_policy::<F64>(rate)?;
        check_policy::<MixedBf16>(rate)?;
        check_policy::<MixedF16>(rate)?;
        check_policy::<Bf16>(rate)?;
    }
    Ok(())
}

#[test]
fn the_bound_catches_a_wrong_scale() {
    // Scaling by (1 − rate) instead of dividing: 0.25 against 1 for rate 0.5 in bf16.
    let (x, rate) = (1.0f64, 0.5);
    let wrong = half::bf16::from_f64(x * (1.0 - rate)).to_f64();
    let want = x / (1.0 - rate);
    assert!((wrong - want).abs() > half::bf16::EPSILON.to_f64() / 2.0 * want);
    // And one bf16 ulp off is outside the bound too: 2 + 2^-6 against 2.
    let off = 2.0 + 2f64.powi(-6);
    assert!((off - want).abs() > <half::bf16 as Element>::UNIT_ROUNDOFF * want);
}

#[test]
fn masks_are_a_function_of_seed_and_step() -> Result<()> {
    let x = ramp::<f32>(4096);
    let mut a = Dropout::<F32>::with_seed(0.5, 3)?;
    let mut b = Dropout::<F32>::with_seed(0.5, 3)?;
    let a0 = a.train_forward(x.clone())?;
    assert_eq!(b.train_forward(x.clone())?, a0, "same seed, same step");
    assert_eq!((a.step(), b.step()), (1, 1));
    let a1 = a.train_forward(x.clone())?;
    assert_ne!(a1, a0, "the next step draws a new mask");
    b.set_step(0);
    assert_eq!(b.train_forward(x.clone())?, a0, "set_step replays step 0");
    let mut c = Dropout::<F32>::with_seed(0.5, 4)?;
    assert_ne!(
        c.train_forward(x.clone())?,
        a0,
        "another seed, another mask"
    );
    // The same bits on one thread as on the pool.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut d = Dropout::<F32>::with_seed(0.5, 3)?;
    assert_eq!(pool.install(|| d.train_forward(x.clone()))?, a0);
    // Layers built without a seed take distinct seeds.
    let (e, f) = (Dropout::<F32>::new(0.5)?, Dropout::<F32>::new(0.5)?);
    assert_ne!(e.config().seed, f.config().seed);
    Ok(())
}

#[test]
fn inference_is_the_identity_and_the_edges_are_exact() -> Result<()> {
    let x = ramp::<half::bf16>(64);
    let layer = Dropout::<MixedBf16>::with_seed(0.9, 1)?;
    assert_eq!(layer.infer(&x)?, x);
    assert_eq!(layer.call(&x.cast::<f32>()), x);
    let mut none = Dropout::<MixedBf16>::with_seed(0.0, 1)?;
    assert_eq!(
        none.train_forward(x.clone())?,
        x,
        "rate 0 keeps everything unscaled"
    );
    let mut all = Dropout::<MixedBf16>::with_seed(1.0, 1)?;
    let y = all.train_forward(x.clone())?;
    assert!(
        y.as_slice().iter().all(|v| v.to_f64() == 0.0),
        "rate 1 drops everything"
    );
    assert!(all
        .backward(x, true)?
        .unwrap()
        .to_f64_vec()
        .iter()
        .all(|&v| v == 0.0));
    Ok(())
}

#[test]
fn nan_and_inf_are_dropped_or_kept_as_selected() -> Result<()> {
    let mut layer = Dropout::<F32>::with_seed(0.5, 9)?;
    let x = Tensor::from_vec(vec![64], vec![f32::NAN; 64])?;
    let y = layer.train_forward(x)?;
    for (i, v) in y.as_slice().iter().enumerate() {
        assert_eq!(v.is_nan(), layer.keeps(0, i), "element {i}");
    }
    let x = Tensor::from_vec(vec![64], vec![f32::INFINITY; 64])?;
    let y = layer.train_forward(x)?;
    for (i, &v) in y.as_slice().iter().enumerate() {
        assert_eq!(
            v,
            if layer.keeps(1, i) {
                f32::INFINITY
            } else {
                0.0
            }
        );
    }
    Ok(())
}

#[test]
fn finite_differences_in_f64() -> Result<()> {
    // With the step fixed the layer is linear, so central differences are exact up to f64
    // rounding; the check fails if backward used another step's mask.
    let x = ramp::<f64>(256);
    let dy = Tensor::from_vec(
        vec![32, 8],
        (0..256).map(|i| ((i * 7) % 13) as f64 - 6.0).collect(),
    )?;
    let mut layer = Dropout::<F64>::with_seed(0.4, 21)?;
    layer.set_step(5);
    layer.train_forward(x.clone())?;
    let dx = layer.backward(dy.clone(), true)?.unwrap();
    let loss = |layer: &mut Dropout<F64>, x: Tensor<f64>| -> Result<f64> {
        layer.set_step(5);
        let y = layer.train_forward(x)?;
        layer.clear_saved();
        Ok(y.as_slice()
            .iter()
            .zip(dy.as_slice())
            .map(|(a, b)| a * b)
            .sum())
    };
    let h = 1e-3;
    for i in (0..256).step_by(5) {
        let (mut up, mut down) = (x.clone().into_vec(), x.clone().into_vec());
        up[i] += h;
        down[i] -= h;
        let fd = (loss(&mut layer, Tensor::from_vec(vec![32, 8], up)?)?
            - loss(&mut layer, Tensor::from_vec(vec![32, 8], down)?)?)
            / (2.0 * h);
        assert!(
            (fd - dx.as_slice()[i]).abs() <= 1e-9,
            "element {i}: {fd} vs {}",
            dx.as_slice()[i]
        );
    }
    // Backward at another step's mask disagrees.
    layer.set_step(6);
    layer.train_forward(x)?;
    assert_ne!(layer.backward(dy, true)?.unwrap(), dx);
    Ok(())
}

#[test]
fn bad_arguments_and_misuse_are_errors() {
    for rate in [-0.1, 1.5, f64::NAN] {
        let err = Dropout::<F32>::new(rate).unwrap_err().to_string();
        assert!(
            err.contains("dropout rate") && err.contains("[0, 1]"),
            "{err}"
        );
    }
    let mut layer = Dropout::<F32>::with_seed(0.5, 0).unwrap();
    let dy = Tensor::<f32>::zeros(vec![2, 2]).unwrap();
    assert!(matches!(
        layer.backward(dy.clone(), true),
        Err(Error::BackwardWithoutForward { layer: "Dropout" })
    ));
    layer
        .train_forward(Tensor::zeros(vec![2, 3]).unwrap())
        .unwrap();
    let err = layer.backward(dy, true).unwrap_err().to_string();
    assert!(err.contains("[2, 3]"), "{err}");
}

#[cfg(feature = "serde")]
#[test]
fn reads_a_keras_get_config() {
    // keras.layers.Dropout(0.25, seed=3).get_config()
    let keras = r#"{"name": "dropout", "trainable": true, "dtype": "float32", "rate": 0.25, "seed": 3, "noise_shape": null}"#;
    let c: DropoutConfig = serde_json::from_str(keras).unwrap();
    assert_eq!(c, DropoutConfig::with_seed(0.25, 3));
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(json, r#"{"rate":0.25,"seed":3}"#);
    assert_eq!(serde_json::from_str::<DropoutConfig>(&json).unwrap(), c);
    let err = |j: &str| {
        serde_json::from_str::<DropoutConfig>(j)
            .unwrap_err()
            .to_string()
    };
    assert!(err(r#"{"rate": 0.5, "noise_shape": [1, 8]}"#).contains("noise_shape is not supported"));
    assert!(err(r#"{"rate": 2.0}"#).contains("dropout rate"));
    assert!(err(r#"{"rate": 0.5, "rat": 1}"#).contains("unknown field"));
    let unseeded: DropoutConfig = serde_json::from_str(r#"{"rate": 0.5, "seed": null}"#).unwrap();
    assert_eq!(unseeded.rate, 0.5);
}
