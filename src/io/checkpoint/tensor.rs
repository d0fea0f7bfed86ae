//! [`CheckpointTensor`]: one stored tensor and its little-endian bytes, and the conversions
//! between mixprec's [`DType`] and safetensors' `Dtype`.

use half::{bf16, f16};
use safetensors::{Dtype, View};

use crate::dtype::{cast_vec, DType, Element, SliceRef, VecOf};
use crate::tensor::Tensor;

/// One stored tensor: name, dtype, shape and its little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointTensor {
    pub(super) name: String,
    pub(super) dtype: DType,
    pub(super) shape: Vec<usize>,
    pub(super) bytes: Vec<u8>,
}

impl CheckpointTensor {
    /// The variable's name (`0.kernel`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stored type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The raw little-endian bytes, as in the file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The values cast from the stored type to `T` (rounded to nearest even when narrowing).
    pub fn to_vec<T: Element>(&self) -> Vec<T> {
        let b = &self.bytes;
        match self.dtype {
            DType::Float16 => cast_vec(le_chunks::<2, _>(b, f16::from_le_bytes)),
            DType::BFloat16 => cast_vec(le_chunks::<2, _>(b, bf16::from_le_bytes)),
            DType::Float32 => cast_vec(le_chunks::<4, _>(b, f32::from_le_bytes)),
            DType::Float64 => cast_vec(le_chunks::<8, _>(b, f64::from_le_bytes)),
        }
    }

    /// The values as a tensor of `T` (see [`to_vec`](Self::to_vec)).
    pub fn to_tensor<T: Element>(&self) -> Tensor<T> {
        Tensor::from_parts(self.shape.clone(), self.to_vec())
    }
}

fn le_chunks<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunks_exact gives N bytes")))
        .collect()
}

pub(super) fn le_bytes<T: Element>(values: &[T]) -> Vec<u8> {
    match T::view(values) {
        SliceRef::F16(s) => s.iter().flat_map(|v| v.to_le_bytes()).collect(),
        SliceRef::Bf16(s) => s.iter().flat_map(|v| v.to_le_bytes()).collect(),
        SliceRef::F32(s) => s.iter().flat_map(|v| v.to_le_bytes()).collect(),
        SliceRef::F64(s) => s.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

pub(super) fn vec_of_le_bytes(values: &VecOf) -> Vec<u8> {
    match values {
        VecOf::F16(v) => le_bytes(v),
        VecOf::Bf16(v) => le_bytes(v),
        VecOf::F32(v) => le_bytes(v),
        VecOf::F64(v) => le_bytes(v),
    }
}

pub(super) fn to_safetensors_dtype(d: DType) -> Dtype {
    match d {
        DType::Float16 => Dtype::F16,
        DType::BFloat16 => Dtype::BF16,
        DType::Float32 => Dtype::F32,
        DType::Float64 => Dtype::F64,
    }
}

pub(super) fn from_safetensors_dtype(d: Dtype) -> Option<DType> {
    match d {
        Dtype::F16 => Some(DType::Float16),
        Dtype::BF16 => Some(DType::BFloat16),
        Dtype::F32 => Some(DType::Float32),
        Dtype::F64 => Some(DType::Float64),
        _ => None,
    }
}

impl View for &CheckpointTensor {
    fn dtype(&self) -> Dtype {
        to_safetensors_dtype(self.dtype)
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}
