// A layer is parameterised by a policy (`Dense<MixedBf16>`, `Dense<Bf16>`), not by a dtype.
use mixprec::prelude::*;

fn main() {
    let _d = Dense::<bf16>::new(4, 2);
}
