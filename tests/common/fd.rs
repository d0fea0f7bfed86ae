//! Finite-difference gradient checks in f64: the loss `L = Σ c ⊙ layer(x)`, its gradient from
//! the backward pass (input first, then every variable in visiting order), the same by central
//! differences, and the first element where the two disagree.

use mixprec::layers::Layer;
use mixprec::Tensor;

/// `Σ c ⊙ layer(x)`.
pub fn loss<L: Layer<Input = f64, Output = f64>>(layer: &L, x: &Tensor<f64>, c: &[f64]) -> f64 {
    let y = layer.infer(x).unwrap();
    y.as_slice().iter().zip(c).map(|(y, c)| y * c).sum()
}

/// The backward pass's input gradient followed by every variable's gradient.
pub fn analytic<L>(layer: &L, x: &Tensor<f64>, c: &[f64]) -> Vec<f64>
where
    L: Layer<Input = f64, Output = f64> + Clone,
{
    let mut l = layer.clone();
    let y = l.train_forward(x.clone()).unwrap();
    let dy = Tensor::from_vec(y.shape().to_vec(), c.to_vec()).unwrap();
    let mut g = l.backward(dy, true).unwrap().unwrap().into_vec();
    g.extend(super::grads(&l).concat());
    g
}

/// Central differences (step 1e-6) of the loss in each input element, then in each variable
/// element.
pub fn numeric<L>(layer: &L, x: &Tensor<f64>, c: &[f64]) -> Vec<f64>
where
    L: Layer<Input = f64, Output = f64> + Clone,
{
    let h = 1e-6;
    let mut out = Vec::new();
    for i in 0..x.len() {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp.as_mut_slice()[i] += h;
        xm.as_mut_slice()[i] -= h;
        out.push((loss(layer, &xp, c) - loss(layer, &xm, c)) / (2.0 * h));
    }
    let w = layer.get_weights();
    for v in 0..w.len() {
        for i in 0..w[v].len() {
            let shifted = |d: f64| {
                let mut w2 = w.clone();
                w2[v].as_mut_slice()[i] += d;
                let mut l = layer.clone();
                l.set_weights(&w2).unwrap();
                loss(&l, x, c)
            };
            out.push((shifted(h) - shifted(-h)) / (2.0 * h));
        }
    }
    out
}

/// The first gradient element more than `tol·max(1, |g|)` from the finite difference.
pub fn mismatch(a: &[f64], n: &[f64], tol: f64) -> Option<String> {
    assert_eq!(a.len(), n.len(), "gradient lengths");
    (0..a.len()).find_map(|i| {
        let ok = (a[i] - n[i]).abs() <= tol * n[i].abs().max(1.0);
        (!ok).then(|| {
            format!(
                "element {i}: backward {} vs finite difference {}",
                a[i], n[i]
            )
        })
    })
}
