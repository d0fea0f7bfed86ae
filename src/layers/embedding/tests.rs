use super::*;
use crate::policy::{Bf16, MixedBf16, F32, F64};

fn table(v: usize, d: usize) -> Tensor<f32> {
    let t = (0..v * d)
        .map(|i| ((i * 31 % 17) as f32 - 8.0) / 3.0)
        .collect();
    Tensor::from_vec(vec![v, d], t).unwrap()
}

fn ids(v: &[f32], shape: Vec<usize>) -> Tensor<f32> {
    Tensor::from_vec(shape, v.to_vec()).unwrap()
}

#[test]
fn rows_are_the_table_rows_rounded_once() {
    let t = table(7, 5);
    let emb = Embedding::<MixedBf16>::from_table(t.clone()).unwrap();
    let x = ids(&[6.0, 0.0, 3.0, 3.0, 1.0, 6.0], vec![2, 3]);
    let y = emb.forward(&x).unwrap();
    assert_eq!(y.shape(), &[2, 3, 5]);
    for (p, &id) in x.as_slice().iter().enumerate() {
        for j in 0..5 {
            let want = half::bf16::from_f32(t.as_slice()[id as usize * 5 + j]);
            assert_eq!(y.as_slice()[p * 5 + j], want, "position {p}, column {j}");
        }
    }
    let by_index = emb.forward_indices(&[6, 0, 3, 3, 1, 6], &[2, 3]).unwrap();
    assert_eq!(by_index, y);
    assert_eq!(emb.call(&x.cast::<f64>()).unwrap(), y);
}

/// The gradient against an f64 reference: each row the sum of its positions' `dy`, within the
/// f32 summation bound `γ_k Σ|dy|` (k the number of repeats), and rows not looked up exactly 0.
fn check_grad(
    g: &[f32],
    ids: &[usize],
    dy: &[f64],
    d: usize,
    v: usize,
) -> std::result::Result<(), String> {
    let u = f32::EPSILON as f64 / 2.0;
    for row in 0..v {
        let hits: Vec<usize> = (0..ids.len()).filter(|&p| ids[p] == row).collect();
        let k = hits.len() as f64;
        for j in 0..d {
            let exact: f64 = hits.iter().map(|&p| dy[p * d + j]).sum();
            let abs: f64 = hits.iter().map(|&p| dy[p * d + j].abs()).sum();
            let bound = k * u / (1.0 - k * u) * abs;
            let got = f64::from(g[row * d + j]);
            if (got - exact).abs() > bound {
                return Err(format!(
                    "row {row} column {j}: {got} against {exact} (bound {bound})"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn repeated_indices_add_up_in_f32() {
    let (v, d) = (6, 3);
    let mut emb = Embedding::<MixedBf16>::from_table(table(v, d)).unwrap();
    let id: Vec<usize> = vec![2, 5, 2, 2, 0, 5, 2, 1];
    let x = ids(
        &id.iter().map(|&i| i as f32).collect::<Vec<_>>(),
        vec![2, 4],
    );
    emb.train_forward(x).unwrap();
    let dy64: Vec<f64> = (0..id.len() * d).map(|i| (i as f64 * 0.37).sin()).collect();
    let dy: Vec<half::bf16> = dy64.iter().map(|&x| half::bf16::from_f64(x)).collect();
    let dyr: Vec<f64> = dy.iter().map(|x| x.to_f64()).collect();
    emb.backward(Tensor::from_vec(vec![2, 4, d], dy).unwrap(), false)
        .unwrap();
    let g = emb.embeddings_param().grad().unwrap().as_slice().to_vec();
    check_grad(&g, &id, &dyr, d, v).unwrap();
    assert!(
        g[3 * d..4 * d].iter().all(|&x| x == 0.0),
        "row 3 was never looked up"
    );
    // A backward that overwrote instead of adding (the last repeat wins) is rejected.
    let mut last_wins = vec![0f32; v * d];
    for (p, &i) in id.iter().enumerate() {
        for j in 0..d {
            last_wins[i * d + j] = dyr[p * d + j] as f32;
        }
    }
    assert!(check_grad(&last_wins, &id, &dyr, d, v).is_err());
}

#[test]
fn gradients_agree_with_finite_differences_in_f64() {
    let (v, d) = (4, 3);
    let mut emb = Embedding::<F64>::from_table(table(v, d)).unwrap();
    let x = ids(&[1.0, 3.0, 1.0, 0.0, 1.0], vec![5]);
    let dy: Vec<f64> = (0..5 * d).map(|i| (i as f64 * 0.91).cos()).collect();
    let loss = |e: &Embedding<F64>| -> f64 {
        let y = e.forward(&x).unwrap();
        y.as_slice().iter().zip(&dy).map(|(a, b)| a * b).sum()
    };
    emb.train_forward(x.clone()).unwrap();
    emb.backward(Tensor::from_vec(vec![5, d], dy.clone()).unwrap(), false)
        .unwrap();
    let g = emb.embeddings_param().grad().unwrap().as_slice().to_vec();
    let h = 1e-6;
    for k in 0..v * d {
        let mut w = emb.get_weights();
        let base = w[0].clone().into_vec();
        let mut up = base.clone();
        up[k] += h;
        let mut down = base;
        down[k] -= h;
        w[0] = Tensor::from_vec(vec![v, d], up).unwrap();
        let mut e_up = emb.clone();
        e_up.set_weights(&w).unwrap();
        w[0] = Tensor::from_vec(vec![v, d], down).unwrap();
        let mut e_down = emb.clone();
        e_down.set_weights(&w).unwrap();
        let fd = (loss(&e_up) - loss(&e_down)) / (2.0 * h);
        assert!((fd - g[k]).abs() < 1e-8, "table[{k}]: {fd} vs {}", g[k]);
    }
}

#[test]
fn an_index_out_of_range_is_an_error_naming_it() {
    let mut emb = Embedding::<F32>::from_table(table(5, 2)).unwrap();
    for (bad, want) in [
        (5.0, "5 at position 2, for a vocabulary of 5"),
        (-1.0, "-1 at position 2"),
        (1.5, "1.5 at position 2"),
        (f32::NAN, "NaN at position 2"),
    ] {
        let x = ids(&[0.0, 4.0, bad], vec![3]);
        let err = emb.train_forward(x).unwrap_err().to_string();
        assert!(err.contains(want) && err.contains("input_dim - 1"), "{err}");
        assert_eq!(emb.saved_bytes(), 0, "nothing saved");
    }
    let err = emb.forward_indices(&[7], &[1]).unwrap_err().to_string();
    assert!(
        err.contains("7 at position 0, for a vocabulary of 5"),
        "{err}"
    );
    assert!(
        emb.forward_indices(&[1, 2], &[3]).is_err(),
        "shape of 3 for 2 indices"
    );
    assert!(matches!(
        emb.backward(Tensor::zeros(vec![1, 2]).unwrap(), false),
        Err(Error::BackwardWithoutForward { layer: "Embedding" })
    ));
    emb.train_forward(ids(&[1.0], vec![1])).unwrap();
    let err = emb
        .backward(Tensor::zeros(vec![1, 2]).unwrap(), true)
        .unwrap_err();
    assert!(err.to_string().contains("no gradient"), "{err}");
    emb.train_forward(ids(&[1.0], vec![1])).unwrap();
    let err = emb
        .backward(Tensor::zeros(vec![2, 2]).unwrap(), false)
        .unwrap_err();
    assert!(err.to_string().contains("[1, 2]"), "{err}");
    assert!(Embedding::<F32>::from_table(Tensor::zeros(vec![0, 3]).unwrap()).is_err());
    assert!(Embedding::<F32>::new(3, 0)
        .unwrap_err()
        .to_string()
        .contains("output_dim"));
}

#[test]
fn keras_defaults_and_a_16_bit_table() {
    let emb = Embedding::<F32>::new(50, 16).unwrap();
    let w = emb.embeddings().as_slice();
    assert!(w.iter().all(|x| x.abs() <= 0.05) && w.iter().any(|&x| x != 0.0));
    assert_eq!(emb, Embedding::<F32>::new(50, 16).unwrap(), "seeded");
    assert_eq!(emb.param_names(), ["embeddings"]);
    // A bf16 table: the gradient is summed in f32 and rounded once to bf16.
    let mut b = Embedding::<Bf16>::from_table(table(3, 1)).unwrap();
    b.train_forward(ids(&[2.0; 3], vec![3])).unwrap();
    let third = half::bf16::from_f32(1.0 / 3.0);
    b.backward(Tensor::from_vec(vec![3, 1], vec![third; 3]).unwrap(), false)
        .unwrap();
    let g = b.embeddings_param().grad().unwrap().as_slice()[2];
    assert_eq!(g, half::bf16::from_f32(third.to_f32() * 3.0));
}

#[cfg(feature = "serde")]
#[test]
fn reads_a_keras_get_config() {
    // keras.layers.Embedding(100, 8).get_config(), Keras 3
    let keras = r#"{"name": "embedding", "trainable": true,
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_bfloat16"}, "registered_name": null},
        "input_dim": 100, "output_dim": 8,
        "embeddings_initializer": {"module": "keras.initializers", "class_name": "RandomUniform", "config": {"seed": null, "minval": -0.05, "maxval": 0.05}, "registered_name": null},
        "embeddings_regularizer": null, "activity_regularizer": null, "embeddings_constraint": null,
        "mask_zero": false}"#;
    let c: EmbeddingConfig = serde_json::from_str(keras).unwrap();
    assert_eq!(c, EmbeddingConfig::new(100, 8));
    let json = serde_json::to_string(&c.seed(3)).unwrap();
    assert_eq!(
        json,
        r#"{"input_dim":100,"output_dim":8,"embeddings_initializer":"uniform","seed":3}"#
    );
    assert_eq!(
        serde_json::from_str::<EmbeddingConfig>(&json).unwrap(),
        c.seed(3)
    );
    for (from, to, want) in [
        (r#""mask_zero": false"#, r#""mask_zero": true"#, "mask_zero"),
        (
            r#""input_dim": 100"#,
            r#""input_dim": 0"#,
            "invalid input_dim: 0",
        ),
        (r#""trainable": true"#, r#""trainable": false"#, "trainable"),
        (
            r#""embeddings_constraint": null"#,
            r#""embeddings_constraint": {}"#,
            "embeddings_constraint",
        ),
    ] {
        let j = keras.replacen(from, to, 1);
        assert_ne!(j, keras);
        let err = serde_json::from_str::<EmbeddingConfig>(&j)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{to}: {err}");
    }
}
