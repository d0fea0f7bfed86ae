// A module is generic over its policy; this one fixes it, so it cannot be converted.
use mixprec::prelude::*;

#[derive(Module)]
struct Mlp {
    hidden: Dense<MixedBf16>,
    out: Dense<MixedBf16>,
}

fn main() {}
