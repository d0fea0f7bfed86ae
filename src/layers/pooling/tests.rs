use super::*;
use crate::error::Error;
use crate::layers::{Flatten, Layer};
use crate::policy::{MixedBf16, F32, F64};
use crate::tensor::Tensor;
use half::bf16;

/// Distinct values 0.1 apart (a permutation), so no two elements of a window tie and central
/// differences with h = 1e-6 never cross a max's kink.
fn distinct(n: usize) -> Vec<f64> {
    (0..n).map(|i| ((i * 37) % n) as f64 * 0.1 - 1.0).collect()
}

/// `max |fd - dx|` of `L = Σ c ⊙ y` at `x`, with `dx` given (the layer's own, or a wrong one).
fn fd_error<L: Layer<Input = f64, Output = f64>>(
    l: &L,
    x: &Tensor<f64>,
    c: &[f64],
    dx: &[f64],
) -> f64 {
    let loss = |x: &Tensor<f64>| -> f64 {
        l.infer(x)
            .unwrap()
            .as_slice()
            .iter()
            .zip(c)
            .map(|(y, c)| y * c)
            .sum()
    };
    let h = 1e-6;
    (0..x.len())
        .map(|i| {
            let (mut p, mut m) = (x.clone(), x.clone());
            p.as_mut_slice()[i] += h;
            m.as_mut_slice()[i] -= h;
            ((loss(&p) - loss(&m)) / (2.0 * h) - dx[i]).abs()
        })
        .fold(0.0, f64::max)
}

/// The layer's input gradient for `L = Σ c ⊙ y`, and `c`.
fn backward<L: Layer<Input = f64, Output = f64>>(
    l: &mut L,
    x: &Tensor<f64>,
) -> (Vec<f64>, Vec<f64>) {
    let y = l.train_forward(x.clone()).unwrap();
    let c: Vec<f64> = (0..y.len())
        .map(|i| ((i * 7) % 5) as f64 - 2.0 + 0.25)
        .collect();
    let dy = Tensor::from_vec(y.shape().to_vec(), c.clone()).unwrap();
    (l.backward(dy, true).unwrap().unwrap().into_vec(), c)
}

fn check<L: Layer<Input = f64, Output = f64>>(name: &str, mut l: L, shape: Vec<usize>) {
    let x = Tensor::from_vec(shape.clone(), distinct(shape.iter().product())).unwrap();
    let (dx, c) = backward(&mut l, &x);
    let err = fd_error(&l, &x, &c, &dx);
    assert!(err < 1e-6, "{name}: max |fd - backward| = {err:e}");
}

fn configs() -> Vec<(&'static str, Pool2DConfig)> {
    let p = Pool2DConfig::new();
    vec![
        ("default", p),
        ("same", p.padding(Padding::Same)),
        (
            "overlapping 3x3 stride 1",
            p.pool_size((3, 3)).strides((1, 1)),
        ),
        (
            "same 3x2 stride 2",
            p.pool_size((3, 2)).strides((2, 2)).padding(Padding::Same),
        ),
    ]
}

#[test]
fn backward_matches_finite_differences_in_f64() {
    for (name, cfg) in configs() {
        check(name, cfg.max_pooling::<F64>().unwrap(), vec![2, 5, 7, 3]);
        check(
            name,
            cfg.average_pooling::<F64>().unwrap(),
            vec![2, 5, 7, 3],
        );
    }
    check(
        "global",
        GlobalAveragePooling2D::<F64>::new(),
        vec![2, 3, 4, 5],
    );
    let keep = GlobalPooling2DConfig::new()
        .keepdims(true)
        .average_pooling::<F64>();
    check("global keepdims", keep, vec![2, 3, 4, 5]);
    check("flatten", Flatten::<F64>::new(), vec![2, 3, 4, 5]);
}

/// The check can fail: averaging the "same" edge windows over the full pool size, or routing
/// a max's gradient to the window's first element, is far from the finite differences.
#[test]
fn finite_difference_check_catches_wrong_gradients() {
    let same = Pool2DConfig::new()
        .pool_size((3, 3))
        .strides((2, 2))
        .padding(Padding::Same);
    let x = Tensor::from_vec(vec![1, 5, 5, 1], distinct(25)).unwrap();
    let mut avg = same.average_pooling::<F64>().unwrap();
    let (dx, c) = backward(&mut avg, &x);
    assert!(fd_error(&avg, &x, &c, &dx) < 1e-6);
    // Full-window counts: scale each input's gradient by (its windows' valid counts)/9.
    let g = same.window("t", x.shape()).unwrap();
    let mut wrong = vec![0.0; 25];
    for oy in 0..g.h.output {
        for ox in 0..g.w.output {
            for iy in (0..3).filter_map(|k| g.h.source(oy, k)) {
                for ix in (0..3).filter_map(|k| g.w.source(ox, k)) {
                    wrong[iy * 5 + ix] += c[oy * g.w.output + ox] / 9.0;
                }
            }
        }
    }
    assert!(fd_error(&avg, &x, &c, &wrong) > 1e-2);
    let mut max = same.max_pooling::<F64>().unwrap();
    let (dx, c) = backward(&mut max, &x);
    assert!(fd_error(&max, &x, &c, &dx) < 1e-6);
    let mut first = vec![0.0; 25];
    for oy in 0..g.h.output {
        for ox in 0..g.w.output {
            let iy = (0..3).find_map(|k| g.h.source(oy, k)).unwrap();
            let ix = (0..3).find_map(|k| g.w.source(ox, k)).unwrap();
            first[iy * 5 + ix] += c[oy * g.w.output + ox];
        }
    }
    assert!(fd_error(&max, &x, &c, &first) > 1e-2);
}

/// The examples of Keras's docs: a 3×3 input 1..9, 2×2 windows, strides 1.
#[test]
fn keras_documented_values_and_shapes() {
    let x = Tensor::from_vec(vec![1, 3, 3, 1], (1..=9).map(f64::from).collect()).unwrap();
    let p = Pool2DConfig::new().strides((1, 1));
    let run = |l: &dyn Fn(&Tensor<f64>) -> Tensor<f64>| l(&x).as_slice().to_vec();
    let max = p.max_pooling::<F64>().unwrap();
    assert_eq!(run(&|x| max.forward(x).unwrap()), [5.0, 6.0, 8.0, 9.0]);
    let max_same = p.padding(Padding::Same).max_pooling::<F64>().unwrap();
    assert_eq!(
        run(&|x| max_same.forward(x).unwrap()),
        [5.0, 6.0, 6.0, 8.0, 9.0, 9.0, 8.0, 9.0, 9.0]
    );
    let avg = p.average_pooling::<F64>().unwrap();
    assert_eq!(run(&|x| avg.forward(x).unwrap()), [3.0, 4.0, 6.0, 7.0]);
    let avg_same = p.padding(Padding::Same).average_pooling::<F64>().unwrap();
    assert_eq!(
        run(&|x| avg_same.forward(x).unwrap()),
        [3.0, 4.0, 4.5, 6.0, 7.0, 7.5, 7.5, 8.5, 9.0]
    );
    // Keras's shapes: (4, 28, 28, 3) → 2×2 default pooling → (4, 14, 14, 3).
    let shape = [4, 28, 28, 3];
    assert_eq!(
        MaxPooling2D::<F32>::new()
            .compute_output_shape(&shape)
            .unwrap(),
        [4, 14, 14, 3]
    );
    let c = Pool2DConfig::new().pool_size((3, 3)).strides((2, 2));
    assert_eq!(
        c.max_pooling::<F32>()
            .unwrap()
            .compute_output_shape(&shape)
            .unwrap(),
        [4, 13, 13, 3]
    );
    let s = c.padding(Padding::Same).average_pooling::<F32>().unwrap();
    assert_eq!(
        s.compute_output_shape(&[4, 27, 28, 3]).unwrap(),
        [4, 14, 14, 3]
    );
    assert_eq!(
        GlobalAveragePooling2D::<F32>::new()
            .compute_output_shape(&shape)
            .unwrap(),
        [4, 3]
    );
    let keep = GlobalPooling2DConfig::new()
        .keepdims(true)
        .average_pooling::<F32>();
    assert_eq!(keep.compute_output_shape(&shape).unwrap(), [4, 1, 1, 3]);
    assert_eq!(
        Flatten::<F32>::new().compute_output_shape(&shape).unwrap(),
        [4, 2352]
    );
    assert_eq!(
        Flatten::<F32>::new().compute_output_shape(&[5]).unwrap(),
        [5, 1]
    );
}

#[test]
fn defaults_are_keras_s() {
    let c = Pool2DConfig::new();
    assert_eq!(
        (c.pool_size, c.strides, c.padding),
        ((2, 2), None, Padding::Valid)
    );
    assert_eq!(c.effective_strides(), (2, 2));
    assert_eq!(c.pool_size((3, 1)).effective_strides(), (3, 1));
    assert_eq!(MaxPooling2D::<F32>::new().config(), c);
    assert!(!GlobalAveragePooling2D::<F32>::new().config().keepdims);
}

/// Ties go to the first element, a NaN wins and takes the gradient, "same" padding never wins
/// (all-negative input).
#[test]
fn max_ties_nan_and_padding() {
    let mut max = MaxPooling2D::<F32>::new();
    let x = Tensor::from_vec(
        vec![1, 2, 4, 1],
        vec![3.0f32, 1.0, 2.0, f32::NAN, 3.0, 0.0, 5.0, 2.0],
    )
    .unwrap();
    let y = max.train_forward(x).unwrap();
    assert_eq!(y.as_slice()[0], 3.0);
    assert!(y.as_slice()[1].is_nan());
    let dx = max
        .backward(
            Tensor::from_vec(vec![1, 1, 2, 1], vec![1.0, 2.0]).unwrap(),
            true,
        )
        .unwrap()
        .unwrap();
    assert_eq!(dx.as_slice(), &[1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
    let same = Pool2DConfig::new()
        .padding(Padding::Same)
        .max_pooling::<F32>()
        .unwrap();
    let neg = Tensor::from_vec(vec![1, 1, 3, 1], vec![-3.0f32, -2.0, -1.0]).unwrap();
    assert_eq!(same.forward(&neg).unwrap().as_slice(), &[-2.0, -1.0]);
}

/// Means sum in f32 and round once: bf16 inputs whose bf16 running sum would lose the small
/// terms (256 + 1 + 1 + 1 rounds to 256 at every step in bf16) give the f32 mean rounded once.
#[test]
fn means_sum_in_f32_and_round_once() {
    let x: Tensor<bf16> = Tensor::from_vec(vec![1, 2, 2, 1], vec![256.0f32, 1.0, 1.0, 1.0])
        .unwrap()
        .cast();
    let want = bf16::from_f32(259.0 / 4.0);
    let avg = AveragePooling2D::<MixedBf16>::new();
    assert_eq!(avg.forward(&x).unwrap().as_slice(), &[want]);
    let gap = GlobalAveragePooling2D::<MixedBf16>::new();
    assert_eq!(gap.forward(&x).unwrap().as_slice(), &[want]);
}

#[test]
fn bad_arguments_are_errors_naming_the_problem() {
    let e = Pool2DConfig::new()
        .pool_size((2, 0))
        .max_pooling::<F32>()
        .unwrap_err();
    assert_eq!(e.to_string(), "invalid pool_size: (2, 0) (both at least 1)");
    let e = Pool2DConfig::new()
        .strides((0, 1))
        .average_pooling::<F32>()
        .unwrap_err();
    assert!(e.to_string().contains("invalid strides: (0, 1)"));
    let max = Pool2DConfig::new()
        .pool_size((3, 3))
        .max_pooling::<F32>()
        .unwrap();
    let e = max
        .call(&Tensor::<f32>::zeros(vec![1, 2, 5, 1]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a window of 3 along the height of an input with only 2"),
        "{e}"
    );
    let e = max
        .call(&Tensor::<f32>::zeros(vec![5, 5, 1]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("max_pooling2d input: expected [batch, height, width, channels]"),
        "{e}"
    );
    let gap = GlobalAveragePooling2D::<F32>::new();
    assert!(matches!(
        gap.call(&Tensor::<f32>::zeros(vec![2, 3]).unwrap()),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(Flatten::<F32>::new()
        .call(&Tensor::<f32>::zeros(vec![]).unwrap())
        .is_err());
    let mut avg = AveragePooling2D::<F32>::new();
    let dy = Tensor::<f32>::zeros(vec![1, 1, 1, 1]).unwrap();
    assert!(matches!(
        avg.backward(dy.clone(), true),
        Err(Error::BackwardWithoutForward {
            layer: "AveragePooling2D"
        })
    ));
    avg.train_forward(Tensor::zeros(vec![1, 4, 4, 1]).unwrap())
        .unwrap();
    let e = avg.backward(dy, true).unwrap_err().to_string();
    assert!(
        e.contains("expected [1, 2, 2, 1], found [1, 1, 1, 1]"),
        "{e}"
    );
}

/// The layers hold no variables, keep their arguments through `to_policy`, and need loss
/// scaling exactly when their policy does.
#[test]
fn stateless_modules() {
    use crate::module::Module;
    use crate::policy::MixedF16;
    let max = Pool2DConfig::new()
        .pool_size((3, 3))
        .max_pooling::<MixedF16>()
        .unwrap();
    assert_eq!(max.param_count(), 0);
    assert!(max.needs_loss_scale());
    assert_eq!(max.to_policy::<F32>().config(), max.config());
    assert!(!max.to_policy::<F32>().needs_loss_scale());
    let mut flat = Flatten::<MixedBf16>::new();
    flat.train_forward(Tensor::zeros(vec![2, 3]).unwrap())
        .unwrap();
    assert_eq!(flat.saved_bytes(), 0);
    let mut m = MaxPooling2D::<F32>::new();
    m.train_forward(Tensor::zeros(vec![1, 4, 4, 2]).unwrap())
        .unwrap();
    assert_eq!(m.saved_bytes(), 8 * std::mem::size_of::<usize>());
    m.clear_saved();
    assert_eq!(m.saved_bytes(), 0);
}
