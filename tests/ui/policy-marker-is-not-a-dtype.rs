// A policy marker names a pair of types; it is not an element type itself.
use mixprec::prelude::*;

fn main() {
    let _t = Tensor::<MixedBf16>::zeros(vec![2, 2]);
}
