//! The crate's error type: one [`Error`] enum for everything a user can get wrong, plus the small
//! [`ParsePolicyError`] that `"…".parse::<DTypePolicy>()` returns (as std's `ParseIntError`).
//!
//! Every message is lowercase, names the bad value and says what would have been right.

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// The Keras names of every policy, in the order the docs list them.
pub(crate) const POLICY_NAMES: &str =
    "float32, float64, float16, bfloat16, mixed_float16, mixed_bfloat16";

/// Everything that can go wrong when data from outside (shapes, strings, files) reaches mixprec.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A policy name that Keras does not know.
    #[error(transparent)]
    ParsePolicy(#[from] ParsePolicyError),
    /// A dtype name that Keras does not know.
    #[error("unknown dtype {found:?} (expected one of: float16, bfloat16, float32, float64)")]
    UnknownDType {
        /// The name that was given.
        found: String,
    },
    /// The number of elements does not match the product of the shape.
    #[error("length mismatch: shape {shape:?} holds {expected} elements, found {found}")]
    LengthMismatch {
        /// The shape that was asked for.
        shape: Vec<usize>,
        /// Its product.
        expected: usize,
        /// The number of elements given.
        found: usize,
    },
    /// A shape's element count overflows `usize`.
    #[error("shape {shape:?} is too large: its element count overflows usize")]
    ShapeOverflow {
        /// The shape that was asked for.
        shape: Vec<usize>,
    },
    /// Two shapes that must agree do not.
    #[error("shape mismatch in {what}: expected {expected}, found {found:?}")]
    ShapeMismatch {
        /// What was being checked (`"dense input"`, `"kernel"`, …).
        what: &'static str,
        /// The expected shape, written with `..` for any leading dimensions (`[.., 64]`).
        expected: String,
        /// The shape that was given.
        found: Vec<usize>,
    },
    /// A layer or model setting is out of its range.
    #[error("invalid {what}: {found} ({expected})")]
    InvalidArgument {
        /// The setting (`"units"`, `"learning_rate"`, …).
        what: &'static str,
        /// The value that was given, formatted.
        found: String,
        /// What would be valid.
        expected: &'static str,
    },
    /// `backward` was called without a preceding training forward pass.
    #[error("backward called on {layer} without a saved forward pass (call train_forward first)")]
    BackwardWithoutForward {
        /// The layer's type name.
        layer: &'static str,
    },
    /// A class label is not below the number of classes.
    #[error("label {label} is out of range for a model with {classes} output {noun} (expected {range})", noun = if *classes == 1 { "class" } else { "classes" }, range = label_range(*classes))]
    LabelOutOfRange {
        /// The label.
        label: u64,
        /// The number of classes (the model's output width).
        classes: usize,
    },
    /// The loss became NaN or infinite in a policy without loss scaling.
    #[error("non-finite {what} ({value}) at epoch {epoch}, batch {batch}: training stopped before it wrote NaN into the weights (lower the learning rate, or check the data)")]
    NonFinite {
        /// `"loss"` or `"gradient"`.
        what: &'static str,
        /// The value seen.
        value: f64,
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
    },
    /// Input data holds NaN or an infinity.
    #[error("non-finite value {value} in {what} at flat index {index} (data must be finite)")]
    NonFiniteData {
        /// `"features"` or `"targets"`.
        what: &'static str,
        /// Row-major index of the first bad value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A data set has no rows, or a batch would be empty.
    #[error("empty {what}: {why}")]
    Empty {
        /// What was empty (`"training data"`).
        what: &'static str,
        /// Why it matters or how it came about.
        why: String,
    },
    /// A file could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A data file is malformed.
    #[error("{source_name} line {line}: {message}")]
    Parse {
        /// The file (or `"embedded digits"`).
        source_name: String,
        /// 1-based line (0: the whole file).
        line: usize,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A checkpoint file is not a well-formed safetensors file (truncated, corrupted header).
    #[cfg(feature = "serde")]
    #[error("{path} is not a valid safetensors checkpoint: {source}")]
    InvalidCheckpoint {
        /// The file.
        path: String,
        /// What the safetensors reader found wrong.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// A checkpoint lacks a metadata entry mixprec needs.
    #[error("checkpoint {path}: metadata key {key:?} is missing (expected {expected})")]
    MissingMetadata {
        /// The file.
        path: String,
        /// The key (`"mixprec.policy"`).
        key: &'static str,
        /// What the entry should hold.
        expected: &'static str,
    },
    /// A checkpoint metadata entry holds a value mixprec cannot read.
    #[error("checkpoint {path}: metadata key {key:?} holds {found:?} (expected {expected})")]
    InvalidMetadata {
        /// The file.
        path: String,
        /// The key.
        key: &'static str,
        /// The value found (cut to 80 characters).
        found: String,
        /// What the entry should hold.
        expected: &'static str,
        /// The parser's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A checkpoint tensor is stored in a type mixprec does not load.
    #[error("checkpoint {path}: tensor {tensor:?} has dtype {found} (expected one of: F16, BF16, F32, F64)")]
    UnsupportedTensorDType {
        /// The file.
        path: String,
        /// The tensor's name.
        tensor: String,
        /// The safetensors dtype found (`"I32"`).
        found: String,
    },
    /// A model variable has no tensor in the checkpoint.
    #[error("checkpoint {path}: tensor {tensor:?} is missing (the model expects it with shape {expected:?})")]
    MissingTensor {
        /// The file.
        path: String,
        /// The variable's name (`"1.bias"`).
        tensor: String,
        /// The variable's shape.
        expected: Vec<usize>,
    },
    /// A checkpoint tensor's shape differs from the model variable's.
    #[error(
        "checkpoint {path}: tensor {tensor:?} has shape {found:?}, the model expects {expected:?}"
    )]
    TensorShapeMismatch {
        /// The file.
        path: String,
        /// The tensor's name.
        tensor: String,
        /// The model variable's shape.
        expected: Vec<usize>,
        /// The stored shape.
        found: Vec<usize>,
    },
    /// A checkpoint holds tensors the model has no variable for.
    #[error("checkpoint {path}: tensors {found:?} are not variables of the model (expected only: {expected})")]
    UnexpectedTensors {
        /// The file.
        path: String,
        /// The names without a model variable.
        found: Vec<String>,
        /// The model's variable names, comma-separated.
        expected: String,
    },
    /// A checkpoint's metadata names another policy than the model being saved.
    #[error(
        "checkpoint metadata names policy \"{found}\" but the model's policy is \"{expected}\""
    )]
    CheckpointPolicyMismatch {
        /// The policy in the metadata.
        found: crate::DTypePolicy,
        /// The model's policy.
        expected: crate::DTypePolicy,
    },
    /// A layer of the model has another policy than the checkpoint recorded for it (strict
    /// [`load_into`](crate::io::checkpoint::load_into)); nothing was loaded.
    #[error("checkpoint {path}: layer {layer:?} was saved in policy \"{found}\" but the model's layer {layer:?} is \"{expected}\" (build that layer in {found}, or load with checkpoint::load_into_converting to cast its variables); nothing was loaded")]
    LayerPolicyMismatch {
        /// The file.
        path: String,
        /// The layer's path (`head`, `0`).
        layer: String,
        /// The layer's policy in the checkpoint.
        found: crate::DTypePolicy,
        /// The model layer's policy.
        expected: crate::DTypePolicy,
    },
    /// A checkpoint tensor is stored in another type than its layer's recorded policy keeps its
    /// variables in.
    #[error("checkpoint {path}: tensor {tensor:?} is stored as {found}, but its layer {layer:?} has policy \"{policy}\", whose variables are {expected} (expected each variable in its layer's variable type; the file was not written by mixprec or was edited)")]
    CheckpointDTypeMismatch {
        /// The file.
        path: String,
        /// The tensor.
        tensor: String,
        /// Its layer's path.
        layer: String,
        /// The layer's recorded policy.
        policy: crate::DTypePolicy,
        /// The stored type.
        found: crate::DType,
        /// The policy's variable type.
        expected: crate::DType,
    },
    /// An IDX (MNIST-style) file is malformed.
    #[error("IDX file {path}: {found} (expected {expected})")]
    InvalidIdx {
        /// The file.
        path: String,
        /// What was found (`"magic number 0x00000801"`).
        found: String,
        /// What was expected (`"0x00000803 for images"`).
        expected: String,
    },
    /// A policy's JSON config could not be read.
    #[cfg(feature = "serde")]
    #[error("invalid policy config: {0}")]
    PolicyConfig(#[source] serde_json::Error),
    /// An optimizer update would have made a variable (or its optimizer state) NaN or infinite;
    /// those elements kept their old values and the error stops training.
    #[error("the update of variable #{variable} overflowed in {elements} element(s) (learning rate {learning_rate}): those weights were left unchanged (lower the learning rate, or check the data and the gradients' size)")]
    NonFiniteUpdate {
        /// Index of the first such variable, in visiting order.
        variable: usize,
        /// Elements held back over all variables.
        elements: usize,
        /// The optimizer's learning rate.
        learning_rate: f32,
    },
    /// Training diverged: an epoch in which no step could be applied, or whose mean loss is not
    /// finite (see [`FitOptions::stop_on_divergence`](crate::train::FitOptions)).
    #[error("training diverged at epoch {epoch}: {what}; {hint}")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// What was seen (`"all 45 steps were skipped..."`).
        what: String,
        /// The likely cause and the fix.
        hint: &'static str,
    },
    /// An allocation whose size comes from outside (a shape, a width, a label count, a file
    /// header) is larger than [`MAX_ALLOCATION_BYTES`](crate::tensor::MAX_ALLOCATION_BYTES).
    #[error("{what} needs {bytes} bytes ({shown}), more than the {limit} bytes ({limit_shown}) mixprec allocates at once (expected a smaller size)", shown = human_bytes(*bytes), limit_shown = human_bytes(*limit))]
    TooLarge {
        /// What was to be allocated and where its size came from
        /// (`"dense kernel [1048576, 1048576] of f32"`).
        what: String,
        /// The bytes it needs.
        bytes: u128,
        /// The most mixprec allocates at once.
        limit: u128,
    },
    /// An allocation within the limit that the system refused (not enough memory).
    #[error("{what} needs {bytes} bytes ({shown}), which the system could not allocate (expected a size that fits in free memory)", shown = human_bytes(*bytes))]
    AllocationFailed {
        /// What was to be allocated.
        what: String,
        /// The bytes it needs.
        bytes: u128,
        /// The allocator's refusal.
        #[source]
        source: std::collections::TryReserveError,
    },
    /// A class label that cannot be read from a data file: not an integer, negative, or beyond
    /// the number of classes the loader accepts.
    #[error("{source_name} line {line}, column {column}: label {found:?} is not a class index (expected an integer in 0..={max}{hint})", max = max_classes.saturating_sub(1))]
    InvalidLabel {
        /// The file.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The field as written.
        found: String,
        /// The most classes the loader accepts.
        max_classes: usize,
        /// A suggestion (`"; is the label column right? see --label-column"`), or empty.
        hint: String,
    },
    /// A checkpoint that [`save`](crate::io::checkpoint::save) refuses to write, because
    /// [`read`](crate::io::checkpoint::read) or [`load_into`](crate::io::checkpoint::load_into)
    /// would refuse it; nothing was written.
    #[error("refusing to save {path}: {what} {found} (expected {expected}); nothing was written")]
    UnsavableCheckpoint {
        /// The target file.
        path: String,
        /// What is wrong (`"variable \"0.kernel\""`, `"loss scale"`).
        what: String,
        /// The bad value, formatted.
        found: String,
        /// What would be valid.
        expected: &'static str,
    },
    /// A checkpoint variable holds NaN or an infinity, or a value beyond the model's variable
    /// type (an f32 weight above 65504 loaded into float16 variables); nothing was loaded.
    #[error("checkpoint {path}: tensor {tensor:?} holds {stored} at flat index {index}, not a finite {dtype} (expected finite weights; the file is damaged, or the model's variable type is too narrow for it)")]
    NonFiniteTensor {
        /// The file.
        path: String,
        /// The tensor's name.
        tensor: String,
        /// Row-major index of the first bad element.
        index: usize,
        /// The value as stored in the file.
        stored: f64,
        /// The model's variable type.
        dtype: crate::DType,
    },
    /// A file that starts like gzip but whose compressed data is damaged or cut short (the file
    /// itself could be read).
    #[error("{path} is not valid gzip data: {source} (expected a complete gzip file; was it truncated?)")]
    CorruptGzip {
        /// The file.
        path: String,
        /// What the decoder found.
        #[source]
        source: std::io::Error,
    },
    /// A layer path matches more than one regex key of a
    /// [`DTypePolicyMap`](crate::DTypePolicyMap) (and none exactly).
    #[error("path {path:?} matches multiple dtype policy specification keys: {keys:?}; please make sure each path only matches at most one dtype policy specification key in the DTypePolicyMap")]
    PolicyMapAmbiguous {
        /// The path looked up.
        path: String,
        /// Every key whose regex fully matches it, in insertion order.
        keys: Vec<String>,
    },
    /// A key inserted into a [`DTypePolicyMap`](crate::DTypePolicyMap) is already there.
    #[error("key {key:?} already exists in the DTypePolicyMap with value \"{existing}\"; please make sure to not use duplicated keys")]
    PolicyMapDuplicateKey {
        /// The key.
        key: String,
        /// The policy it already maps to.
        existing: crate::DTypePolicy,
    },
    /// A [`DTypePolicyMap`](crate::DTypePolicyMap) key is neither a plain layer path nor a
    /// regular expression the `regex` crate accepts.
    #[error("dtype policy key {key:?} is not a valid regular expression (expected a layer path, or a regex that fully matches layer paths): {source}")]
    PolicyMapInvalidKey {
        /// The key.
        key: String,
        /// The regex parser's or compiler's message.
        #[source]
        source: regex::Error,
    },
}

/// The error of `"…".parse::<DTypePolicy>()`: the name is not one of Keras's float policies.
///
/// ```
/// use mixprec::DTypePolicy;
/// let err = "mixed_fp16".parse::<DTypePolicy>().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     r#"unknown policy "mixed_fp16" (expected one of: float32, float64, float16, bfloat16, mixed_float16, mixed_bfloat16)"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy {found:?} (expected one of: {POLICY_NAMES})", found = self.shown())]
pub struct ParsePolicyError {
    pub(crate) found: String,
}

impl ParsePolicyError {
    /// Longest name quoted back in full; a longer one is cut so an error stays one line.
    const SHOWN: usize = 64;

    /// The rejected name, as given.
    pub fn found(&self) -> &str {
        &self.found
    }

    fn shown(&self) -> String {
        match self.found.char_indices().nth(Self::SHOWN) {
            Some((cut, _)) => format!("{}…", &self.found[..cut]),
            None => self.found.clone(),
        }
    }
}

impl Error {
    pub(crate) fn shape(what: &'static str, expected: String, found: &[usize]) -> Self {
        Error::ShapeMismatch {
            what,
            expected,
            found: found.to_vec(),
        }
    }
}

/// The valid labels for `classes` classes, as an error message writes them.
fn label_range(classes: usize) -> String {
    match classes {
        0 => "no label: the model has no output".into(),
        1 => "0".into(),
        n => format!("0..={}", n - 1),
    }
}

/// `bytes` in binary units, for messages (`4.0 GiB`).
fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let (mut v, mut u) = (bytes as f64, 0);
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Formats a shape as `[a, b]` for [`Error::ShapeMismatch`]'s `expected` field.
pub(crate) fn fmt_shape(dims: &[usize]) -> String {
    format!("{dims:?}")
}
