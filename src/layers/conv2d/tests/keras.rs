//! Keras's shapes and defaults, and bad arguments as errors.

use super::*;

#[test]
fn output_shapes_are_keras_s() {
    let shape = |c: Conv2DConfig| {
        c.init::<F32>(3)
            .unwrap()
            .compute_output_shape(&[4, 28, 28, 3])
            .unwrap()
    };
    let c = Conv2DConfig::new(2, (3, 3));
    assert_eq!(shape(c), [4, 26, 26, 2]);
    assert_eq!(shape(c.dilation_rate((2, 2))), [4, 24, 24, 2]);
    assert_eq!(shape(c.padding(Padding::Same)), [4, 28, 28, 2]);
    assert_eq!(shape(c.strides((2, 2))), [4, 13, 13, 2]);
    assert_eq!(
        shape(c.strides((3, 2)).padding(Padding::Same)),
        [4, 10, 14, 2]
    );
    for input in 1..12usize {
        for (k, s, d) in [
            (1, 1, 1),
            (3, 1, 1),
            (3, 2, 1),
            (2, 3, 1),
            (3, 1, 2),
            (3, 2, 2),
        ] {
            let cfg = Conv2DConfig::new(1, (k, 1))
                .strides((s, 1))
                .dilation_rate((d, 1));
            let eff = (k - 1) * d + 1;
            let same = cfg.padding(Padding::Same).init::<F32>(1).unwrap();
            let y = same.compute_output_shape(&[1, input, 1, 1]).unwrap();
            assert_eq!(y[1], input.div_ceil(s));
            let valid = cfg
                .init::<F32>(1)
                .unwrap()
                .compute_output_shape(&[1, input, 1, 1]);
            match valid {
                Ok(y) => assert_eq!(y[1], (input - eff) / s + 1),
                Err(_) => assert!(eff > input),
            }
        }
    }
    // The forward pass gives the shape it reports.
    let conv = c
        .padding(Padding::Same)
        .strides((2, 2))
        .init::<MixedBf16>(3)
        .unwrap();
    let y = conv
        .call(&Tensor::<f32>::zeros(vec![1, 7, 8, 3]).unwrap())
        .unwrap();
    assert_eq!(y.shape(), &[1, 4, 4, 2]);
}

#[test]
fn defaults_are_keras_s() {
    let c = Conv2DConfig::new(8, (3, 3));
    assert_eq!(
        (c.strides, c.dilation_rate, c.padding),
        ((1, 1), (1, 1), Padding::Valid)
    );
    assert_eq!(c.activation, Activation::Linear);
    assert!(c.use_bias);
    assert_eq!(
        (c.kernel_initializer, c.bias_initializer),
        (Initializer::GlorotUniform, Initializer::Zeros)
    );
    let conv = c.init::<F32>(4).unwrap();
    assert_eq!(conv.kernel().shape(), &[3, 3, 4, 8]);
    assert!(conv.bias().unwrap().as_slice().iter().all(|&b| b == 0.0));
    // Glorot with Keras's fans: fan_in 3·3·4, fan_out 3·3·8.
    let limit = (6.0f32 / (36.0 + 72.0)).sqrt();
    let w = conv.kernel().as_slice();
    assert!(w.iter().all(|v| v.abs() <= limit) && w.iter().any(|v| v.abs() > limit / 2.0));
    assert_eq!(conv.param_names(), ["kernel", "bias"]);
}

#[test]
fn bad_arguments_are_errors_naming_the_problem() {
    let err = |c: Conv2DConfig, ch: usize| c.init::<F32>(ch).unwrap_err().to_string();
    assert_eq!(
        err(Conv2DConfig::new(0, (3, 3)), 2),
        "invalid filters: 0 (at least 1)"
    );
    assert!(err(Conv2DConfig::new(2, (0, 3)), 2).contains("invalid kernel_size: (0, 3)"));
    assert!(err(Conv2DConfig::new(2, (3, 3)).strides((1, 0)), 2).contains("invalid strides"));
    assert!(err(Conv2DConfig::new(2, (3, 3)).dilation_rate((0, 1)), 2)
        .contains("invalid dilation_rate"));
    assert!(err(
        Conv2DConfig::new(2, (3, 3)).dilation_rate((usize::MAX, 1)),
        2
    )
    .contains("dilation_rate"));
    assert!(err(Conv2DConfig::new(2, (3, 3)), 0).contains("invalid input_channels: 0"));
    let conv = Conv2DConfig::new(2, (3, 3))
        .dilation_rate((1, 2))
        .init::<F32>(2)
        .unwrap();
    let fwd = |shape: Vec<usize>| {
        conv.call(&Tensor::<f32>::zeros(shape).unwrap())
            .unwrap_err()
    };
    let e = fwd(vec![1, 4, 4, 2]).to_string();
    assert!(
        e.contains("window of 5 (kernel 3, dilation 2) along the width of an input with only 4"),
        "{e}"
    );
    assert!(matches!(
        fwd(vec![1, 4, 4, 2]),
        Error::InvalidArgument { .. }
    ));
    let e = fwd(vec![4, 4, 2]).to_string();
    assert!(
        e.contains("expected [batch, height, width, 2] (NHWC), found [4, 4, 2]"),
        "{e}"
    );
    assert!(fwd(vec![1, 8, 8, 3])
        .to_string()
        .contains("found [1, 8, 8, 3]"));
    let mut conv = conv;
    let dy = Tensor::<f32>::zeros(vec![1, 2, 2, 2]).unwrap();
    assert!(matches!(
        conv.backward(dy.clone(), true),
        Err(Error::BackwardWithoutForward { layer: "Conv2D" })
    ));
    conv.train_forward(Tensor::zeros(vec![1, 5, 6, 2]).unwrap())
        .unwrap();
    let e = conv.backward(dy, true).unwrap_err().to_string();
    assert!(
        e.contains("conv2d output gradient: expected [1, 3, 2, 2], found [1, 2, 2, 2]"),
        "{e}"
    );
}
