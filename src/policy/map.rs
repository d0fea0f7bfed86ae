//! [`DTypePolicyMap`]: a run-time policy per layer path, with Keras's class, lookup rules and JSON.
//!
//! Keras's `keras.dtype_policies.DTypePolicyMap` maps layer paths (`"encoder/dense_1"`, or this
//! crate's variable-path style `"hidden"`, `"0"`) to policies. A lookup:
//!
//! 1. returns the policy of the key equal to the path, if there is one;
//! 2. otherwise tries every key as a regular expression that must match the *whole* path
//!    (Python's `re.fullmatch`): exactly one match gives its policy, more than one is an error
//!    naming the path and every matching key;
//! 3. otherwise returns the map's default policy.
//!
//! There is no prefix matching: the key `"encoder"` matches the path `"encoder"` only; write
//! `"encoder/.*"` for its children.
//!
//! Keys are compiled once, when inserted, by the [`regex`] crate. Its syntax is Python's for
//! everything layer paths need (classes, alternation, repetition, groups, `\d`, `\w`), but it
//! has no look-around and no backreferences: such a key is refused at insertion with the
//! parser's message, where Keras would only fail at the first lookup. Matching takes linear time
//! in the path whatever the key, so keys read from a file cannot stall a lookup.
//!
//! With the `serde` feature, the map reads and writes Keras's JSON (`to_keras_json`,
//! `from_keras_json` and serde's traits).

#[cfg(feature = "serde")]
mod serde_impl;

use std::fmt;

use regex::Regex;

use crate::error::{Error, Result};
use crate::policy::runtime::{global_policy, DTypePolicy, IntoPolicy};

/// Layer paths to run-time policies, with regex keys and a default (Keras's `DTypePolicyMap`).
///
/// ```
/// use mixprec::{DTypePolicy, DTypePolicyMap};
/// let mut map = DTypePolicyMap::with_default(DTypePolicy::Float32);
/// map.insert("encoder/layer_0/dense", "bfloat16")?;
/// map.insert("encoder/.*", DTypePolicy::Float16)?;
/// map.insert("decoder", DTypePolicy::BFloat16)?;
///
/// // An exact key wins, even over a regex key that also matches.
/// assert_eq!(map.get("encoder/layer_0/dense")?, DTypePolicy::BFloat16);
/// // Otherwise a key is a regex that must match the whole path.
/// assert_eq!(map.get("encoder/attention/query")?, DTypePolicy::Float16);
/// // No prefix matching: "decoder" is not a parent of "decoder/attention".
/// assert_eq!(map.get("decoder/attention")?, DTypePolicy::Float32);
///
/// // A path matching two regex keys is an error naming both.
/// map.insert("encoder/attention/.*", DTypePolicy::BFloat16)?;
/// let err = map.get("encoder/attention/query").unwrap_err();
/// assert!(err.to_string().starts_with(
///     r#"path "encoder/attention/query" matches multiple dtype policy specification keys: ["encoder/.*", "encoder/attention/.*"]"#
/// ));
/// # Ok::<(), mixprec::Error>(())
/// ```
///
/// Equality is a map's: the same default and the same keys with the same policies, in any order
/// (as Python's `dict`). Iteration and JSON follow insertion order.
#[derive(Clone)]
pub struct DTypePolicyMap {
    default_policy: DTypePolicy,
    entries: Vec<Entry>,
}

/// One key, its policy and, unless the key is a plain name, its anchored regex.
#[derive(Clone)]
struct Entry {
    key: String,
    policy: DTypePolicy,
    /// `None` for a key without regex metacharacters: its regex would match the key itself
    /// only, which the exact comparison already covers.
    regex: Option<Regex>,
}

impl Entry {
    fn new(key: String, policy: DTypePolicy) -> Result<Entry> {
        let regex = if regex::escape(&key) == key {
            None
        } else {
            Some(compile_full_match(&key)?)
        };
        Ok(Entry { key, policy, regex })
    }

    fn matches(&self, path: &str) -> bool {
        self.regex.as_ref().is_some_and(|r| r.is_match(path))
    }
}

/// `key` as a regex that matches a whole path only (Python's `re.fullmatch`).
///
/// The key is compiled on its own first, so a key that is not a regex by itself is refused with
/// a message about the key (`a)|(b` would otherwise become the valid `\A(?:a)|(b)\z`, which
/// matches any path starting with `a`). A key ending inside an `(?x)` comment swallows the
/// closing `)\z`; a newline ends the comment, and is itself ignored in that mode.
fn compile_full_match(key: &str) -> Result<Regex> {
    let invalid = |source| Error::PolicyMapInvalidKey {
        key: key.to_string(),
        source,
    };
    Regex::new(key).map_err(invalid)?;
    Regex::new(&format!(r"\A(?:{key})\z"))
        .or_else(|_| Regex::new(&format!("\\A(?:{key}\n)\\z")))
        .map_err(invalid)
}

impl DTypePolicyMap {
    /// An empty map whose default is the global policy ([`global_policy`]) as it is now, as
    /// Keras's `DTypePolicyMap()`.
    pub fn new() -> Self {
        Self::with_default(global_policy())
    }

    /// An empty map with `default_policy` for paths that no key matches.
    pub fn with_default(default_policy: DTypePolicy) -> Self {
        DTypePolicyMap {
            default_policy,
            entries: Vec::new(),
        }
    }

    /// A map with the global policy as default and `pairs` inserted in order.
    ///
    /// ```
    /// use mixprec::{DTypePolicy, DTypePolicyMap};
    /// let map = DTypePolicyMap::try_from_pairs([("body/.*", "mixed_bfloat16"), ("head", "float32")])?;
    /// assert_eq!(map.get("body/0")?, DTypePolicy::MixedBFloat16);
    /// assert!(DTypePolicyMap::try_from_pairs([("a", "float32"), ("a", "float16")]).is_err());
    /// # Ok::<(), mixprec::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert), for the first pair it refuses.
    pub fn try_from_pairs<K, P, I>(pairs: I) -> Result<Self>
    where
        K: Into<String>,
        P: IntoPolicy,
        I: IntoIterator<Item = (K, P)>,
    {
        let mut map = Self::new();
        map.try_extend(pairs)?;
        Ok(map)
    }

    /// Inserts `pairs` in order; on an error none of them is left inserted.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert), for the first pair it refuses.
    pub fn try_extend<K, P, I>(&mut self, pairs: I) -> Result<()>
    where
        K: Into<String>,
        P: IntoPolicy,
        I: IntoIterator<Item = (K, P)>,
    {
        let before = self.entries.len();
        for (key, policy) in pairs {
            if let Err(e) = self.insert(key, policy) {
                self.entries.truncate(before);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The policy of paths that no key matches.
    pub fn default_policy(&self) -> DTypePolicy {
        self.default_policy
    }

    /// Replaces the default policy.
    pub fn set_default_policy(&mut self, default_policy: DTypePolicy) {
        self.default_policy = default_policy;
    }

    /// Adds `key` (a layer path, or a regex that must match whole paths) with `policy` (a
    /// [`DTypePolicy`] or a Keras name).
    ///
    /// # Errors
    ///
    /// - [`Error::PolicyMapDuplicateKey`] if `key` is already in the map (Keras refuses to
    ///   overwrite too; [`remove`](Self::remove) it first);
    /// - [`Error::PolicyMapInvalidKey`] if `key` has regex metacharacters but is not a valid
    ///   regex (an unbalanced parenthesis, a look-around, …);
    /// - [`Error::ParsePolicy`] if `policy` is a name that is not a Keras policy.
    ///
    /// The map is unchanged on an error.
    pub fn insert(&mut self, key: impl Into<String>, policy: impl IntoPolicy) -> Result<()> {
        let key = key.into();
        if let Some(existing) = self.exact(&key) {
            return Err(Error::PolicyMapDuplicateKey {
                key,
                existing: existing.policy,
            });
        }
        let policy = policy.into_policy()?;
        self.entries.push(Entry::new(key, policy)?);
        Ok(())
    }

    /// Removes `key` (compared as a string, not as a regex), returning its policy.
    pub fn remove(&mut self, key: &str) -> Option<DTypePolicy> {
        let i = self.entries.iter().position(|e| e.key == key)?;
        Some(self.entries.remove(i).policy)
    }

    /// The policy for the layer at `path`: the exact key's, else the one fully matching regex
    /// key's, else the default.
    ///
    /// # Errors
    ///
    /// [`Error::PolicyMapAmbiguous`] when no key equals `path` and more than one key's regex
    /// matches it; the error lists them in insertion order.
    pub fn get(&self, path: &str) -> Result<DTypePolicy> {
        if let Some(e) = self.exact(path) {
            return Ok(e.policy);
        }
        let mut matching = self.entries.iter().filter(|e| e.matches(path));
        let Some(first) = matching.next() else {
            return Ok(self.default_policy);
        };
        if matching.next().is_none() {
            return Ok(first.policy);
        }
        Err(Error::PolicyMapAmbiguous {
            path: path.to_string(),
            keys: self
                .entries
                .iter()
                .filter(|e| e.matches(path))
                .map(|e| e.key.clone())
                .collect(),
        })
    }

    /// The keys that match none of `paths`, neither exactly nor as a full-match regex, in
    /// insertion order. Keras ignores such keys; a caller that knows every layer path of its
    /// model can report them (a typo such as `"7"` for a 3-layer model).
    ///
    /// ```
    /// use mixprec::DTypePolicyMap;
    /// let map = DTypePolicyMap::try_from_pairs([("[0-9]+", "bfloat16"), ("head", "float32"), ("7", "float16")])?;
    /// let unused: Vec<&str> = map.keys_matching_none(&["0", "1", "head"]).collect();
    /// assert_eq!(unused, ["7"]);
    /// # Ok::<(), mixprec::Error>(())
    /// ```
    pub fn keys_matching_none<'a, S: AsRef<str>>(
        &'a self,
        paths: &'a [S],
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(|e| {
                !paths
                    .iter()
                    .any(|p| e.key == p.as_ref() || e.matches(p.as_ref()))
            })
            .map(|e| e.key.as_str())
    }

    /// Whether `key` is one of the keys (compared as a string: Keras's `key in map`).
    pub fn contains_key(&self, key: &str) -> bool {
        self.exact(key).is_some()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no keys (every path gets the default).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys and their policies, in insertion order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: self.entries.iter(),
        }
    }

    fn exact(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

impl Default for DTypePolicyMap {
    /// [`DTypePolicyMap::new`]: empty, with the global policy as default.
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for DTypePolicyMap {
    fn eq(&self, other: &Self) -> bool {
        self.default_policy == other.default_policy
            && self.len() == other.len()
            && self
                .entries
                .iter()
                .all(|e| other.exact(&e.key).is_some_and(|o| o.policy == e.policy))
    }
}

impl Eq for DTypePolicyMap {}

/// The keys and policies of a [`DTypePolicyMap`], in insertion order.
#[derive(Clone)]
pub struct Iter<'a> {
    inner: std::slice::Iter<'a, Entry>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, DTypePolicy);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|e| (e.key.as_str(), e.policy))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back().map(|e| (e.key.as_str(), e.policy))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

impl<'a> IntoIterator for &'a DTypePolicyMap {
    type Item = (&'a str, DTypePolicy);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl fmt::Display for DTypePolicyMap {
    /// Keras's `repr` without the address:
    /// `<DTypePolicyMap default_policy=float32, mapping=[("head", float32)]>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<DTypePolicyMap default_policy={}, mapping=[",
            self.default_policy
        )?;
        for (i, (key, policy)) in self.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}({key:?}, {policy})")?;
        }
        f.write_str("]>")
    }
}

impl fmt::Debug for DTypePolicyMap {
    /// `DTypePolicyMap { default_policy: Float32, policy_map: {"head": Float32} }`, keys in
    /// insertion order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Keys<'a>(&'a DTypePolicyMap);
        impl fmt::Debug for Keys<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map().entries(self.0.iter()).finish()
            }
        }
        f.debug_struct("DTypePolicyMap")
            .field("default_policy", &self.default_policy)
            .field("policy_map", &Keys(self))
            .finish()
    }
}

#[cfg(test)]
mod tests;
