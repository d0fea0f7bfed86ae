//! The run-time policy: [`DTypePolicy`] parses and prints Keras's names, [`PolicyVisitor`] and
//! [`with_policy!`](crate::with_policy) carry a policy chosen at run time into monomorphized generic
//! code, and [`set_global_policy`] / [`global_policy`] hold the process-wide default.
//!
//! The global policy is process-wide (one atomic), not thread-local as in Keras: Rust programs
//! routinely build models on one thread and train or serve on others (rayon, tokio), and a
//! thread-local default would silently differ between them. Anything built through the run-time
//! path reads the global once, at construction; changing it later changes nothing already built.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, ParsePolicyError};
use crate::policy::{Bf16, DefaultPolicy, MixedBf16, MixedF16, Policy, F16, F32, F64};
use crate::DType;

/// A Keras dtype policy chosen at run time (`"mixed_bfloat16"`, …).
///
/// ```
/// use mixprec::{DType, DTypePolicy};
/// let p: DTypePolicy = "mixed_bfloat16".parse()?;
/// assert_eq!(p, DTypePolicy::MixedBFloat16);
/// assert_eq!(p.to_string(), "mixed_bfloat16");
/// assert_eq!(p.compute_dtype(), DType::BFloat16);
/// assert_eq!(p.variable_dtype(), DType::Float32);
/// assert!("Mixed_BFloat16".parse::<DTypePolicy>().is_err()); // exact and case-sensitive
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DTypePolicy {
    /// `"float32"`: [`F32`].
    Float32,
    /// `"float64"`: [`F64`].
    Float64,
    /// `"float16"`: [`F16`].
    Float16,
    /// `"bfloat16"`: [`Bf16`].
    BFloat16,
    /// `"mixed_float16"`: [`MixedF16`].
    MixedFloat16,
    /// `"mixed_bfloat16"`: [`MixedBf16`].
    MixedBFloat16,
}

impl DTypePolicy {
    /// All six, in Keras's documentation order.
    pub const ALL: [DTypePolicy; 6] = [
        DTypePolicy::Float32,
        DTypePolicy::Float64,
        DTypePolicy::Float16,
        DTypePolicy::BFloat16,
        DTypePolicy::MixedFloat16,
        DTypePolicy::MixedBFloat16,
    ];

    /// Keras's name.
    pub const fn name(self) -> &'static str {
        match self {
            DTypePolicy::Float32 => "float32",
            DTypePolicy::Float64 => "float64",
            DTypePolicy::Float16 => "float16",
            DTypePolicy::BFloat16 => "bfloat16",
            DTypePolicy::MixedFloat16 => "mixed_float16",
            DTypePolicy::MixedBFloat16 => "mixed_bfloat16",
        }
    }

    /// The type layers compute in.
    pub const fn compute_dtype(self) -> DType {
        match self {
            DTypePolicy::Float32 => DType::Float32,
            DTypePolicy::Float64 => DType::Float64,
            DTypePolicy::Float16 | DTypePolicy::MixedFloat16 => DType::Float16,
            DTypePolicy::BFloat16 | DTypePolicy::MixedBFloat16 => DType::BFloat16,
        }
    }

    /// The type variables are stored in.
    pub const fn variable_dtype(self) -> DType {
        match self {
            DTypePolicy::Float64 => DType::Float64,
            DTypePolicy::Float16 => DType::Float16,
            DTypePolicy::BFloat16 => DType::BFloat16,
            DTypePolicy::Float32 | DTypePolicy::MixedFloat16 | DTypePolicy::MixedBFloat16 => {
                DType::Float32
            }
        }
    }

    /// Whether training in this policy needs loss scaling (compute type f16).
    pub const fn needs_loss_scale(self) -> bool {
        matches!(self.compute_dtype(), DType::Float16)
    }

    /// Calls `visitor.visit::<P>()` with `P` the marker type of this policy: the bridge from a
    /// policy chosen at run time to monomorphized generic code (a `match`, no `dyn`).
    ///
    /// ```
    /// use mixprec::{DTypePolicy, PolicyVisitor, policy::Policy};
    /// struct ComputeBytes;
    /// impl PolicyVisitor for ComputeBytes {
    ///     type Output = usize;
    ///     fn visit<P: Policy>(self) -> usize { P::COMPUTE_DTYPE.size_of() }
    /// }
    /// assert_eq!(DTypePolicy::MixedBFloat16.visit(ComputeBytes), 2);
    /// ```
    pub fn visit<V: PolicyVisitor>(self, visitor: V) -> V::Output {
        match self {
            DTypePolicy::Float32 => visitor.visit::<F32>(),
            DTypePolicy::Float64 => visitor.visit::<F64>(),
            DTypePolicy::Float16 => visitor.visit::<F16>(),
            DTypePolicy::BFloat16 => visitor.visit::<Bf16>(),
            DTypePolicy::MixedFloat16 => visitor.visit::<MixedF16>(),
            DTypePolicy::MixedBFloat16 => visitor.visit::<MixedBf16>(),
        }
    }

    const fn from_index(i: u8) -> DTypePolicy {
        // Only indices written by `set_global_policy` reach here.
        match i {
            0 => DTypePolicy::Float32,
            1 => DTypePolicy::Float64,
            2 => DTypePolicy::Float16,
            3 => DTypePolicy::BFloat16,
            4 => DTypePolicy::MixedFloat16,
            _ => DTypePolicy::MixedBFloat16,
        }
    }
}

/// Generic code to run for a policy chosen at run time; see [`DTypePolicy::visit`].
pub trait PolicyVisitor {
    /// What the visit returns.
    type Output;
    /// Runs with `P` the policy's marker type.
    fn visit<P: Policy>(self) -> Self::Output;
}

/// Runs a block once per policy with a type alias bound to the marker type, choosing the arm from
/// a run-time [`DTypePolicy`]: the closure-like twin of [`DTypePolicy::visit`].
///
/// ```
/// use mixprec::prelude::*;
/// let policy: DTypePolicy = "mixed_float16".parse()?;
/// let bytes = mixprec::with_policy!(policy, P => {
///     let dense = DenseConfig::new(2).seed(1).init::<P>(4).unwrap();
///     dense.variable_bytes()
/// });
/// assert_eq!(bytes, (4 * 2 + 2) * 4); // variables stay f32
/// # Ok::<(), mixprec::Error>(())
/// ```
#[macro_export]
macro_rules! with_policy {
    ($policy:expr, $p:ident => $body:expr) => {
        match $policy {
            $crate::DTypePolicy::Float32 => {
                type $p = $crate::policy::F32;
                $body
            }
            $crate::DTypePolicy::Float64 => {
                type $p = $crate::policy::F64;
                $body
            }
            $crate::DTypePolicy::Float16 => {
                type $p = $crate::policy::F16;
                $body
            }
            $crate::DTypePolicy::BFloat16 => {
                type $p = $crate::policy::Bf16;
                $body
            }
            $crate::DTypePolicy::MixedFloat16 => {
                type $p = $crate::policy::MixedF16;
                $body
            }
            $crate::DTypePolicy::MixedBFloat16 => {
                type $p = $crate::policy::MixedBf16;
                $body
            }
        }
    };
}

impl fmt::Display for DTypePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DTypePolicy {
    type Err = ParsePolicyError;

    /// Parses one of Keras's six float policy names, exactly (case-sensitive, no trimming).
    fn from_str(s: &str) -> Result<Self, ParsePolicyError> {
        DTypePolicy::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| ParsePolicyError {
                found: s.to_string(),
            })
    }
}

impl Default for DTypePolicy {
    /// The compile-time [`DefaultPolicy`]'s run-time twin.
    fn default() -> Self {
        DefaultPolicy::RUNTIME
    }
}

/// Something [`set_global_policy`] accepts: a [`DTypePolicy`] or a Keras name.
pub trait IntoPolicy {
    /// The policy, or why the value is not one.
    fn into_policy(self) -> Result<DTypePolicy, Error>;
}

impl IntoPolicy for DTypePolicy {
    fn into_policy(self) -> Result<DTypePolicy, Error> {
        Ok(self)
    }
}

impl IntoPolicy for &str {
    fn into_policy(self) -> Result<DTypePolicy, Error> {
        Ok(self.parse()?)
    }
}

impl IntoPolicy for &String {
    fn into_policy(self) -> Result<DTypePolicy, Error> {
        self.as_str().into_policy()
    }
}

impl IntoPolicy for String {
    fn into_policy(self) -> Result<DTypePolicy, Error> {
        self.as_str().into_policy()
    }
}

static GLOBAL: AtomicU8 = AtomicU8::new(DefaultPolicy::RUNTIME as u8);

/// Sets the process-wide policy that run-time constructors read (Keras's
/// `keras.config.set_dtype_policy`). Returns the previous one.
///
/// # Errors
///
/// [`Error::ParsePolicy`] for a name that is not one of Keras's six; the global is then left as it
/// was.
///
/// ```
/// use mixprec::{global_policy, set_global_policy, DTypePolicy};
/// let before = set_global_policy("mixed_bfloat16")?;
/// assert_eq!(global_policy(), DTypePolicy::MixedBFloat16);
/// assert!(set_global_policy("mixed_fp16").is_err());
/// assert_eq!(global_policy(), DTypePolicy::MixedBFloat16); // unchanged
/// set_global_policy(before)?;
/// # Ok::<(), mixprec::Error>(())
/// ```
pub fn set_global_policy(policy: impl IntoPolicy) -> Result<DTypePolicy, Error> {
    let policy = policy.into_policy()?;
    Ok(DTypePolicy::from_index(
        GLOBAL.swap(policy as u8, Ordering::SeqCst),
    ))
}

/// The process-wide policy: the cargo feature's [`DefaultPolicy`] until [`set_global_policy`]
/// changes it.
pub fn global_policy() -> DTypePolicy {
    DTypePolicy::from_index(GLOBAL.load(Ordering::SeqCst))
}

#[cfg(feature = "serde")]
mod serde_impl {
    //! Keras's JSON form: `{"module": "keras", "class_name": "DTypePolicy", "config": {"name":
    //! "mixed_bfloat16"}, "registered_name": null}`; a plain name string is read too.

    use super::DTypePolicy;
    use crate::error::Error;
    use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Config<'a> {
        #[serde(borrow)]
        name: std::borrow::Cow<'a, str>,
    }

    #[derive(Serialize, Deserialize)]
    struct Keras<'a> {
        #[serde(borrow)]
        module: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        class_name: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        config: Config<'a>,
        #[serde(default, borrow)]
        registered_name: Option<std::borrow::Cow<'a, str>>,
    }

    /// What a policy's JSON may be, as a deserialization error says it.
    const EXPECTED: &str = "a policy name string such as \"mixed_float16\", or Keras's config \
        {\"module\": \"keras\", \"class_name\": \"DTypePolicy\", \"config\": {\"name\": \"mixed_float16\"}}";

    /// Reads either JSON form, and says which forms exist when given anything else (serde's
    /// `untagged` would only say "data did not match any variant").
    struct PolicyVisitor;

    impl<'de> de::Visitor<'de> for PolicyVisitor {
        type Value = String;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(EXPECTED)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<String, A::Error> {
            let k = Keras::deserialize(de::value::MapAccessDeserializer::new(map))?;
            // Keras 3.0–3.3 wrote "FloatDTypePolicy"; later versions "DTypePolicy".
            if !matches!(&*k.class_name, "DTypePolicy" | "FloatDTypePolicy") {
                return Err(de::Error::custom(format_args!(
                    "unknown class_name {:?} (expected \"DTypePolicy\")",
                    k.class_name
                )));
            }
            Ok(k.config.name.into_owned())
        }
    }

    impl Serialize for DTypePolicy {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            Keras {
                module: "keras".into(),
                class_name: "DTypePolicy".into(),
                config: Config {
                    name: self.name().into(),
                },
                registered_name: None,
            }
            .serialize(s)
        }
    }

    impl<'de> Deserialize<'de> for DTypePolicy {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let name = d.deserialize_any(PolicyVisitor)?;
            name.parse().map_err(de::Error::custom)
        }
    }

    impl DTypePolicy {
        /// Keras's JSON config of this policy.
        ///
        /// ```
        /// use mixprec::DTypePolicy;
        /// assert_eq!(
        ///     DTypePolicy::MixedBFloat16.to_keras_json(),
        ///     r#"{"module":"keras","class_name":"DTypePolicy","config":{"name":"mixed_bfloat16"},"registered_name":null}"#
        /// );
        /// ```
        pub fn to_keras_json(self) -> String {
            serde_json::to_string(&self).expect("a DTypePolicy always serializes")
        }

        /// Reads Keras's JSON config, or a JSON string holding a plain name.
        ///
        /// # Errors
        ///
        /// [`Error::PolicyConfig`] when the JSON is malformed, has the wrong shape, or names an
        /// unknown policy.
        pub fn from_keras_json(json: &str) -> Result<Self, Error> {
            serde_json::from_str(json).map_err(Error::PolicyConfig)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trips() {
        for p in DTypePolicy::ALL {
            assert_eq!(DTypePolicy::from_index(p as u8), p);
        }
    }

    #[test]
    fn with_policy_binds_the_marker() {
        for p in DTypePolicy::ALL {
            assert_eq!(crate::with_policy!(p, Q => Q::RUNTIME), p);
        }
    }
}
