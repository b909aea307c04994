fn main() {
    println!("{}", gptoss_backend::kernel_summary());
    for _ in 0..2 {
        let f = gptoss_backend::probe::fma_gflops(400);
        let i = gptoss_backend::probe::int8_gops(400);
        println!("fma {f:.0} GFLOP/s  int8 {:?} GOP/s", i.map(|v| v.round()));
    }
}
