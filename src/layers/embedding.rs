//! [`Embedding`]: Keras's `Embedding`, a table of `input_dim` vectors of `output_dim` looked up by
//! integer index; [`EmbeddingConfig`] its arguments.

use crate::dtype::{cast_slice, Element};
use crate::error::{fmt_shape, Error, Result};
use crate::layers::ops::saved::{saved_slot, Saved, SavedBytes};
use crate::layers::Layer;
use crate::param::Param;
use crate::policy::{DefaultPolicy, Policy};
use crate::tensor::{alloc, Tensor};
use crate::Module;

mod config;
#[cfg(test)]
mod tests;

pub use config::EmbeddingConfig;

/// Keras's `Embedding(input_dim, output_dim)`: `y[..., :] = table[index[...], :]`.
///
/// The table (`embeddings`, `[input_dim, output_dim]`) is a variable in the variable type, read
/// in the compute type (Keras's autocast: under `mixed_bfloat16` each row is the f32 row rounded
/// once to bf16, cached between updates as every variable's compute copy is). The output has the
/// indices' shape with `output_dim` appended.
///
/// The input is a tensor of indices held as `f32` (Keras casts its input to an integer type;
/// every index below 2²⁴ is exact in f32), or a slice of `usize` through
/// [`forward_indices`](Self::forward_indices). An index that is negative, not an integer, or not
/// below `input_dim` is an error naming it, its position and the vocabulary size; nothing is
/// computed or saved then.
///
/// The backward pass adds each position's output gradient into its index's row, in f32 (f64 for
/// `F64`), in the order of the positions, so repeated indices add up and the result does not
/// depend on the thread count; rows no index touched are zero. The indices have no gradient:
/// asking for the input's gradient is an error (an `Embedding` is the first layer of a model).
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::layers::Embedding;
/// let table = Tensor::from_vec(vec![3, 2], vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0])?;
/// let mut emb = Embedding::<MixedBf16>::from_table(table)?;
/// let ids = Tensor::from_vec(vec![1, 3], vec![2.0f32, 0.0, 2.0])?;
/// let y = emb.train_forward(ids.clone())?;
/// assert_eq!(y.shape(), &[1, 3, 2]);
/// assert_eq!(y.to_f64_vec(), vec![4.0, 5.0, 0.0, 1.0, 4.0, 5.0]);
/// emb.backward(Tensor::from_vec(vec![1, 3, 2], vec![bf16::ONE; 6])?, false)?;
/// let g = emb.embeddings_param().grad().unwrap();
/// assert_eq!(g.as_slice(), &[1.0, 1.0, 0.0, 0.0, 2.0, 2.0]); // index 2 twice
/// let bad = Tensor::from_vec(vec![1], vec![3.0f32])?;
/// assert!(emb.infer(&bad).unwrap_err().to_string().contains("vocabulary of 3"));
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct Embedding<P: Policy = DefaultPolicy> {
    #[module(param)]
    embeddings: Param<P>,
    #[module(reset)]
    saved: Saved<Indices>,
}

impl<P: Policy> PartialEq for Embedding<P> {
    /// Equal tables (what is saved for backward is transient).
    fn eq(&self, other: &Self) -> bool {
        self.embeddings == other.embeddings
    }
}

/// What the training pass keeps: the indices, and the output shape.
#[derive(Debug, Clone)]
struct Indices {
    ids: Vec<usize>,
    out_shape: Vec<usize>,
}

impl SavedBytes for Indices {
    fn saved_bytes(&self) -> usize {
        self.ids.len() * size_of::<usize>()
    }
}

impl<P: Policy> Embedding<P> {
    /// Keras's `Embedding(input_dim, output_dim)`: the table drawn from `U(-0.05, 0.05)`
    /// (Keras's `"uniform"`) with the default seed.
    ///
    /// # Errors
    ///
    /// As [`EmbeddingConfig::init`].
    pub fn new(input_dim: usize, output_dim: usize) -> Result<Self> {
        EmbeddingConfig::new(input_dim, output_dim).init()
    }

    /// The layer with this table, `[input_dim, output_dim]` in f32, rounded once to the
    /// variable type.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when the table is not 2-D with both sizes at least 1.
    pub fn from_table(table: Tensor<f32>) -> Result<Self> {
        match *table.shape() {
            [v, d] if v > 0 && d > 0 => Ok(Self::from_param(Param::new(table.cast()))),
            _ => Err(Error::shape(
                "embedding table",
                "[input_dim, output_dim] with both >= 1".into(),
                table.shape(),
            )),
        }
    }

    fn from_param(embeddings: Param<P>) -> Self {
        Embedding {
            embeddings,
            saved: Saved::default(),
        }
    }

    /// The vocabulary size (`input_dim`).
    pub fn input_dim(&self) -> usize {
        self.embeddings.shape()[0]
    }

    /// The vector width (`output_dim`).
    pub fn output_dim(&self) -> usize {
        self.embeddings.shape()[1]
    }

    /// The table, in the variable type.
    pub fn embeddings(&self) -> &Tensor<P::Variable> {
        self.embeddings.value()
    }

    /// The table variable (value, gradient, compute copy).
    pub fn embeddings_param(&self) -> &Param<P> {
        &self.embeddings
    }

    /// The rows of `ids` (in row-major order of `shape`, whose product is `ids.len()`), shaped
    /// `shape` with `output_dim` appended, in the compute type.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for an index not below `input_dim`, naming it, its position
    /// and the vocabulary size; [`Error::ShapeMismatch`] when `shape` does not hold `ids.len()`
    /// elements; [`Error::TooLarge`] when the output would not fit.
    pub fn forward_indices(&self, ids: &[usize], shape: &[usize]) -> Result<Tensor<P::Compute>> {
        if alloc::numel(shape)? != ids.len() {
            let expected = format!("a shape of {} elements (one per index)", ids.len());
            return Err(Error::shape("embedding indices", expected, shape));
        }
        if let Some((pos, &id)) = ids.iter().enumerate().find(|(_, &i)| i >= self.input_dim()) {
            return Err(self.out_of_range(id as f64, pos));
        }
        self.gather(ids, shape)
    }

    /// The inference pass on indices held as floats.
    ///
    /// # Errors
    ///
    /// As [`forward_indices`](Self::forward_indices), and [`Error::InvalidArgument`] for an
    /// index that is negative, NaN or not an integer.
    pub fn forward(&self, x: &Tensor<f32>) -> Result<Tensor<P::Compute>> {
        self.gather(&self.indices(x)?, x.shape())
    }

    /// Keras's `layer(x)`: indices of any float type.
    ///
    /// # Errors
    ///
    /// As [`forward`](Self::forward).
    pub fn call<T: Element>(&self, x: &Tensor<T>) -> Result<Tensor<P::Compute>> {
        self.forward(&x.cast_ref::<f32>())
    }

    fn out_of_range(&self, value: f64, pos: usize) -> Error {
        Error::InvalidArgument {
            what: "embedding index",
            found: format!(
                "{value} at position {pos}, for a vocabulary of {}",
                self.input_dim()
            ),
            expected: "integers from 0 to input_dim - 1",
        }
    }

    fn indices(&self, x: &Tensor<f32>) -> Result<Vec<usize>> {
        let v = self.input_dim() as f64;
        let mut ids = alloc::try_with_capacity(|| "embedding indices".into(), x.len())?;
        for (pos, &f) in x.as_slice().iter().enumerate() {
            let f = f64::from(f);
            if !(0.0..v).contains(&f) || f.fract() != 0.0 {
                return Err(self.out_of_range(f, pos));
            }
            ids.push(f as usize);
        }
        Ok(ids)
    }

    fn gather(&self, ids: &[usize], shape: &[usize]) -> Result<Tensor<P::Compute>> {
        let d = self.output_dim();
        let mut out_shape = shape.to_vec();
        out_shape.push(d);
        alloc::check_shape::<P::Compute>(|| "embedding output".into(), &out_shape)?;
        let table = self.embeddings.compute();
        let y = crate::kernels::par_collect(ids.len() * d, |range, out| {
            // `range` may start and end inside a row.
            for (o, i) in out.iter_mut().zip(range) {
                *o = table[ids[i / d] * d + i % d];
            }
        });
        Ok(Tensor::from_parts(out_shape, y))
    }
}

impl<P: Policy> Layer for Embedding<P> {
    type Input = f32;
    type Output = P::Compute;

    fn infer(&self, x: &Tensor<f32>) -> Result<Tensor<P::Compute>> {
        self.forward(x)
    }

    fn train_forward(&mut self, x: Tensor<f32>) -> Result<Tensor<P::Compute>> {
        let ids = self.indices(&x)?;
        let y = self.gather(&ids, x.shape())?;
        let out_shape = y.shape().to_vec();
        self.saved.save(Indices { ids, out_shape });
        Ok(y)
    }

    fn backward(
        &mut self,
        dy: Tensor<P::Compute>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<f32>>> {
        let saved = self.saved.take("Embedding")?;
        if dy.shape() != saved.out_shape.as_slice() {
            let expected = fmt_shape(&saved.out_shape);
            return Err(Error::shape(
                "Embedding output gradient",
                expected,
                dy.shape(),
            ));
        }
        if need_input_grad {
            return Err(Error::InvalidArgument {
                what: "input gradient",
                found: "asked of an Embedding".into(),
                expected: "an Embedding as the first layer: its input (indices) has no gradient",
            });
        }
        let d = self.output_dim();
        self.embeddings
            .write_grad::<<P::Compute as Element>::Acc>(f64::INFINITY, |g| {
                g.fill(Default::default());
                let mut row = vec![Default::default(); d];
                for (&id, dy) in saved.ids.iter().zip(dy.as_slice().chunks_exact(d)) {
                    cast_slice(dy, &mut row);
                    let g = &mut g[id * d..][..d];
                    for (g, &r) in g.iter_mut().zip(&row) {
                        *g = *g + r;
                    }
                }
            });
        Ok(None)
    }

    saved_slot!();

    fn output_dim(&self, _input: usize) -> Option<usize> {
        Some(self.output_dim())
    }

    fn output_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        Some([input, &[self.output_dim()]].concat())
    }
}
