// `count` does not depend on the policy, so it cannot be a layer; configuration is #[module(skip)].
use mixprec::prelude::*;

#[derive(Module)]
struct Mlp<P: Policy> {
    hidden: Dense<P>,
    count: usize,
    out: Dense<P>,
}

fn main() {}
