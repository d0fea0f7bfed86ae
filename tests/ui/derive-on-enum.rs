// An enum of layers is not a module: the derive needs a struct with named fields.
use mixprec::prelude::*;

#[derive(Module)]
enum Model<P: Policy> {
    Small(Dense<P>),
    Large(Dense<P>, Dense<P>),
}

fn main() {}
