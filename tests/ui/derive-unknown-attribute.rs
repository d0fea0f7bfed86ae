// `#[module(ignore)]` is not a key; the error lists the ones that exist.
use mixprec::prelude::*;

#[derive(Module)]
struct Mlp<P: Policy> {
    hidden: Dense<P>,
    #[module(ignore)]
    name: String,
    out: Dense<P>,
}

fn main() {}
