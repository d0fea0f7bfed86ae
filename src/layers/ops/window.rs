//! The geometry of a sliding window over the height and width of an NHWC tensor, shared by
//! [`Conv2D`](crate::layers::Conv2D) and the pooling layers: [`Padding`] (Keras's `"valid"` and
//! `"same"`), the output size and padding of one axis ([`Axis`]) with Keras's exact rule, and
//! the checks of a layer's input (rank 4, its channel count, a kernel that fits).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// How a window treats the edges of its input: Keras's `padding` argument.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Padding {
    /// `"valid"` (Keras's default): no padding; the window stays inside the input, so the
    /// output has `floor((in - k_eff) / s) + 1` positions (`k_eff = (k - 1)·d + 1`).
    #[default]
    Valid,
    /// `"same"`: `ceil(in / s)` positions; the input is padded with
    /// `pad_total = max((out - 1)·s + k_eff - in, 0)` positions, `pad_total / 2` before and the
    /// rest after (TensorFlow's and Keras's rule).
    Same,
}

impl Padding {
    /// Keras's name (`"valid"`, `"same"`).
    pub const fn name(self) -> &'static str {
        match self {
            Padding::Valid => "valid",
            Padding::Same => "same",
        }
    }
}

impl fmt::Display for Padding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Padding {
    type Err = Error;

    /// Keras's name; Keras also accepts upper case (`"SAME"`).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "valid" => Ok(Padding::Valid),
            "same" => Ok(Padding::Same),
            _ => Err(Error::InvalidArgument {
                what: "padding",
                found: format!("{s:?}"),
                expected: "\"valid\" or \"same\"",
            }),
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Padding {
    /// Keras's name (`"same"`).
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Padding {
    /// Keras's name (`"same"`, `"valid"`).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// One spatial axis of a window: the input size, the (undilated) kernel size, stride,
/// dilation, and the output size and leading padding they give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Axis {
    /// Input positions.
    pub(crate) input: usize,
    /// Kernel taps (before dilation).
    pub(crate) kernel: usize,
    /// Step between windows.
    pub(crate) stride: usize,
    /// Step between taps.
    pub(crate) dilation: usize,
    /// Output positions.
    pub(crate) output: usize,
    /// Padding positions before the input.
    pub(crate) pad_before: usize,
}

impl Axis {
    /// The extent of the dilated kernel, `(k - 1)·d + 1`, or `None` when it overflows.
    pub(crate) fn effective(kernel: usize, dilation: usize) -> Option<usize> {
        (kernel - 1).checked_mul(dilation)?.checked_add(1)
    }

    /// The axis for `input` positions, with Keras's output size and padding for `padding`.
    /// `kernel`, `stride` and `dilation` are at least 1 (checked when the layer is built).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] under `Padding::Valid` when the dilated kernel is larger than
    /// the input, naming both (`layer` and `axis` name what was checked).
    pub(crate) fn new(
        layer: &'static str,
        axis: &str,
        input: usize,
        (kernel, stride, dilation): (usize, usize, usize),
        padding: Padding,
    ) -> Result<Self> {
        let eff = Self::effective(kernel, dilation);
        let (output, pad_before) = match padding {
            Padding::Valid => match eff {
                Some(e) if e <= input => ((input - e) / stride + 1, 0),
                _ => {
                    let dilated = if dilation > 1 {
                        format!(" (kernel {kernel}, dilation {dilation})")
                    } else {
                        String::new()
                    };
                    let e = eff.map_or("overflowing".to_string(), |e| e.to_string());
                    return Err(Error::InvalidArgument {
                        what: layer,
                        found: format!(
                            "a window of {e}{dilated} along the {axis} of an input with only \
                             {input}"
                        ),
                        expected: "a window no larger than the input under padding \"valid\" \
                                   (use padding \"same\", or a larger input)",
                    });
                }
            },
            Padding::Same => {
                let output = input.div_ceil(stride);
                let need = output.saturating_sub(1).saturating_mul(stride);
                let total = need
                    .saturating_add(eff.unwrap_or(usize::MAX))
                    .saturating_sub(input);
                (output, total / 2)
            }
        };
        Ok(Axis {
            input,
            kernel,
            stride,
            dilation,
            output,
            pad_before,
        })
    }

    /// The input position of tap `k` of window `o`, or `None` when it falls in the padding.
    #[inline]
    pub(crate) fn source(&self, o: usize, k: usize) -> Option<usize> {
        (o * self.stride + k * self.dilation)
            .checked_sub(self.pad_before)
            .filter(|&i| i < self.input)
    }

    /// The taps `k` in `0..kernel` whose window `o` reaches input position `i`, through
    /// [`source`](Self::source): the windows `o` (in order) and taps that read `i`.
    #[inline]
    pub(crate) fn readers(&self, i: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.kernel).filter_map(move |k| {
            let at = (i + self.pad_before).checked_sub(k * self.dilation)?;
            (at % self.stride == 0 && at / self.stride < self.output)
                .then_some((at / self.stride, k))
        })
    }
}

/// The window over an NHWC input: batch, both axes, channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window2d {
    /// Images in the batch.
    pub(crate) batch: usize,
    /// The height axis.
    pub(crate) h: Axis,
    /// The width axis.
    pub(crate) w: Axis,
    /// Channels (the last dimension).
    pub(crate) channels: usize,
}

/// A window's arguments per axis: `(kernel, stride, dilation)` for the height and the width.
pub(crate) type WindowArgs = [(usize, usize, usize); 2];

impl Window2d {
    /// The window of `layer` over an input of `shape` `[batch, height, width, channels]`.
    /// `channels` is the count the layer was built for, or `None` for any.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when `shape` is not 4-D or has another channel count;
    /// [`Error::InvalidArgument`] when the window does not fit under `Padding::Valid`.
    pub(crate) fn new(
        layer: &'static str,
        shape: &[usize],
        channels: Option<usize>,
        args: WindowArgs,
        padding: Padding,
    ) -> Result<Self> {
        let expected = || match channels {
            Some(c) => format!("[batch, height, width, {c}] (NHWC)"),
            None => "[batch, height, width, channels] (NHWC)".to_string(),
        };
        let &[batch, height, width, c] = shape else {
            return Err(Error::shape(layer, expected(), shape));
        };
        if channels.is_some_and(|want| want != c) {
            return Err(Error::shape(layer, expected(), shape));
        }
        Ok(Window2d {
            batch,
            h: Axis::new(layer, "height", height, args[0], padding)?,
            w: Axis::new(layer, "width", width, args[1], padding)?,
            channels: c,
        })
    }

    /// The output shape for `out_channels` channels.
    pub(crate) fn output_shape(&self, out_channels: usize) -> Vec<usize> {
        vec![self.batch, self.h.output, self.w.output, out_channels]
    }

    /// Output positions (rows of the im2col matrix): `batch · out_h · out_w`.
    pub(crate) fn output_rows(&self) -> usize {
        self.batch * self.h.output * self.w.output
    }

    /// Taps per window: `kh · kw · channels` (columns of the im2col matrix).
    pub(crate) fn taps(&self) -> usize {
        self.h.kernel * self.w.kernel * self.channels
    }
}

/// `value` as a checked window argument of `layer`: at least 1.
///
/// # Errors
///
/// [`Error::InvalidArgument`] naming `what` when a component is zero.
pub(crate) fn positive_pair(what: &'static str, value: (usize, usize)) -> Result<()> {
    if value.0 == 0 || value.1 == 0 {
        return Err(Error::InvalidArgument {
            what,
            found: format!("({}, {})", value.0, value.1),
            expected: "both at least 1",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(input: usize, k: usize, s: usize, d: usize, p: Padding) -> (usize, usize) {
        let a = Axis::new("test", "height", input, (k, s, d), p).unwrap();
        (a.output, a.pad_before)
    }

    /// Keras's output sizes, and TensorFlow's "same" padding split (the extra one after).
    #[test]
    fn output_sizes_and_padding_follow_keras() {
        assert_eq!(axis(5, 3, 1, 1, Padding::Valid), (3, 0));
        assert_eq!(axis(5, 3, 2, 1, Padding::Valid), (2, 0));
        assert_eq!(axis(6, 3, 2, 1, Padding::Valid), (2, 0));
        assert_eq!(axis(7, 3, 1, 2, Padding::Valid), (3, 0));
        assert_eq!(axis(5, 3, 1, 1, Padding::Same), (5, 1));
        // in 6, stride 2: out 3, pad_total = max(2·2 + 3 - 6, 0) = 1 → 0 before, 1 after.
        assert_eq!(axis(6, 3, 2, 1, Padding::Same), (3, 0));
        assert_eq!(axis(5, 3, 2, 1, Padding::Same), (3, 1));
        // Dilation 2 makes a 3-tap kernel 5 wide: pad_total 4.
        assert_eq!(axis(5, 3, 1, 2, Padding::Same), (5, 2));
        // A window larger than the input is fine under "same".
        assert_eq!(axis(2, 5, 1, 1, Padding::Same), (2, 2));
    }

    #[test]
    fn readers_invert_source() {
        for (input, k, s, d, p) in [
            (7, 3, 2, 1, Padding::Same),
            (9, 3, 1, 2, Padding::Same),
            (8, 2, 3, 1, Padding::Valid),
            (4, 5, 1, 1, Padding::Same),
        ] {
            let a = Axis::new("t", "height", input, (k, s, d), p).unwrap();
            for i in 0..input {
                let mut want = vec![];
                for kk in 0..k {
                    for o in 0..a.output {
                        if a.source(o, kk) == Some(i) {
                            want.push((o, kk));
                        }
                    }
                }
                let mut got: Vec<_> = a.readers(i).collect();
                got.sort_unstable();
                want.sort_unstable();
                assert_eq!(got, want, "{input} {k} {s} {d} {p} at {i}");
            }
        }
    }

    #[test]
    fn bad_inputs_name_the_problem() {
        let err = Axis::new("conv2d", "width", 2, (3, 1, 2), Padding::Valid).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(
                "window of 5 (kernel 3, dilation 2) along the width of an input with only 2"
            ),
            "{msg}"
        );
        let args = [(3, 1, 1); 2];
        let err = Window2d::new("conv2d input", &[1, 8, 8], Some(3), args, Padding::Same);
        assert_eq!(
            err.unwrap_err().to_string(),
            "shape mismatch in conv2d input: expected [batch, height, width, 3] (NHWC), found [1, 8, 8]"
        );
        let err = Window2d::new("conv2d input", &[1, 8, 8, 4], Some(3), args, Padding::Same);
        assert!(err.unwrap_err().to_string().contains("found [1, 8, 8, 4]"));
        assert_eq!("SAME".parse::<Padding>().unwrap(), Padding::Same);
        assert!("full".parse::<Padding>().is_err());
        assert!(positive_pair("strides", (1, 0))
            .unwrap_err()
            .to_string()
            .contains("invalid strides: (1, 0)"));
    }
}
