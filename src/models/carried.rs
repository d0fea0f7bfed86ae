//! What the per-layer models ([`LayeredMlp`](super::LayeredMlp),
//! [`LayeredCnn`](super::LayeredCnn)) share: [`Carried`], a tensor between two layers in the
//! type its producer emitted, and [`each_layer!`], which runs generic code on the typed layer
//! inside a [`ByPolicy`](crate::layers::ByPolicy).

use half::{bf16, f16};

use crate::dtype::{DType, Element};
use crate::tensor::Tensor;

/// Runs `$body` on the typed layer inside a [`ByPolicy`](crate::layers::ByPolicy), for
/// whichever policy it holds.
macro_rules! each_layer {
    ($layer:expr, $d:ident => $body:expr) => {
        match $layer {
            $crate::layers::ByPolicy::Float32($d) => $body,
            $crate::layers::ByPolicy::Float64($d) => $body,
            $crate::layers::ByPolicy::Float16($d) => $body,
            $crate::layers::ByPolicy::BFloat16($d) => $body,
            $crate::layers::ByPolicy::MixedFloat16($d) => $body,
            $crate::layers::ByPolicy::MixedBFloat16($d) => $body,
        }
    };
}
pub(crate) use each_layer;

/// A tensor between two layers, in the type its producer emitted. Each consumer casts it to its
/// own compute type (Keras's consumer-casts rule; a move, not a copy, when the types are equal).
pub(crate) enum Carried {
    F16(Tensor<f16>),
    Bf16(Tensor<bf16>),
    F32(Tensor<f32>),
    F64(Tensor<f64>),
}

impl Carried {
    /// Wraps `t` as it is (a move: `into_cast` to its own type keeps the allocation).
    pub(crate) fn new<T: Element>(t: Tensor<T>) -> Self {
        match T::DTYPE {
            DType::Float16 => Carried::F16(t.into_cast()),
            DType::BFloat16 => Carried::Bf16(t.into_cast()),
            DType::Float32 => Carried::F32(t.into_cast()),
            DType::Float64 => Carried::F64(t.into_cast()),
        }
    }

    /// The tensor in the consumer's type `U`: moved when it already is, converted once (rounded
    /// to nearest-even) otherwise.
    pub(crate) fn into_type<U: Element>(self) -> Tensor<U> {
        match self {
            Carried::F16(t) => t.into_cast(),
            Carried::Bf16(t) => t.into_cast(),
            Carried::F32(t) => t.into_cast(),
            Carried::F64(t) => t.into_cast(),
        }
    }

    /// The same elements under `shape` (a move; the caller keeps the element count).
    pub(crate) fn reshaped(self, shape: Vec<usize>) -> Self {
        fn re<T: Element>(t: Tensor<T>, shape: Vec<usize>) -> Tensor<T> {
            debug_assert_eq!(t.len(), shape.iter().product::<usize>());
            Tensor::from_parts(shape, t.into_vec())
        }
        match self {
            Carried::F16(t) => Carried::F16(re(t, shape)),
            Carried::Bf16(t) => Carried::Bf16(re(t, shape)),
            Carried::F32(t) => Carried::F32(re(t, shape)),
            Carried::F64(t) => Carried::F64(re(t, shape)),
        }
    }
}
