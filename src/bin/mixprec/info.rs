//! `mixprec info`: the CPU's 16-bit features, the kernel each policy runs on, and whether mixed
//! precision will speed things up here (what Keras's guide asks users to check by hand).

use mixprec::Result;

/// `mixprec info`.
pub fn info() -> Result<()> {
    let flags = cpu_flags();
    let has = |f: &str| flags.iter().any(|x| x == f);
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!(
        "CPU: {}",
        cpu_model().unwrap_or_else(|| std::env::consts::ARCH.to_string())
    );
    println!("  AVX-512F     {}", yes(has("avx512f")));
    println!("  AVX512-BF16  {}", yes(has("avx512_bf16")));
    println!("  AVX512-FP16  {}", yes(has("avx512_fp16")));
    println!("  F16C         {}", yes(has("f16c")));
    println!("  AMX-BF16     {}", yes(has("amx_bf16")));
    println!("\nkernels: {}", mixprec::kernels::describe());
    Ok(())
}

fn cpuinfo() -> String {
    std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()
}

fn cpu_flags() -> Vec<String> {
    let text = cpuinfo();
    let line = text.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    line.split(':')
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn cpu_model() -> Option<String> {
    let text = cpuinfo();
    let line = text.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split(':').nth(1)?.trim().to_string())
}
