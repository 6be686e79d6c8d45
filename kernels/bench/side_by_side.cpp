// Side-by-side tuning bench for the CPU block-sparse kernel (not built by CMake; the official
// numbers come from experiments/kernel_density.toml). Causal-full layout, B=1 H=8 D=64:
// block_sparse_forward / block_sparse_attention fwd+bwd vs at::_scaled_dot_product_attention
// (is_causal) and at::mm 2048^2 (sgemm ceiling), all in one process, median of 3; peak bytes
// through a wrapping CPU allocator. Build and run (after building attnlab_kernels):
//   g++ -O2 -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=1 kernels/bench/side_by_side.cpp \
//     -Ikernels/include -I/usr/include/torch/csrc/api/include -Lbuild-kernels/lib \
//     -lattnlab_kernels -ltorch -ltorch_cpu -lc10 -Wl,-rpath,$PWD/build-kernels/lib -o /tmp/side_by_side
//   /tmp/side_by_side T tile reps threads        (e.g. 4096 64 3 2)
#include <attnlab/kernels/attention.hpp>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <torch/csrc/autograd/autograd.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <algorithm>
#include <mutex>
#include <unordered_map>
using namespace attnlab::kernels;
struct Tracker : c10::Allocator {
  c10::Allocator* base; std::mutex mu; std::unordered_map<void*,std::pair<size_t,c10::DataPtr>> sizes; size_t live=0, peak=0;
  static void del(void* p);
  c10::DataPtr allocate(size_t n) const override {
    auto* self=const_cast<Tracker*>(this); c10::DataPtr d=base->allocate(n); void* p=d.get();
    auto dev=d.device();
    { std::lock_guard<std::mutex> g(self->mu); self->sizes.emplace(p,std::make_pair(n,std::move(d))); self->live+=n; self->peak=std::max(self->peak,self->live);}
    return {p, p, &Tracker::del, dev};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &Tracker::del; }
};
static Tracker tracker;
void Tracker::del(void* p){ c10::DataPtr keep; {std::lock_guard<std::mutex> g(tracker.mu); auto it=tracker.sizes.find(p); if(it!=tracker.sizes.end()){tracker.live-=it->second.first; keep=std::move(it->second.second); tracker.sizes.erase(it);} } }
static double now(){return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();}
static double cpu_now(){timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t); return t.tv_sec+t.tv_nsec*1e-9;}
template<class F> std::pair<double,double> med(F f,int reps){std::vector<double> w,c; for(int i=0;i<reps;++i){double a=now(),b=cpu_now(); f(); w.push_back(now()-a); c.push_back(cpu_now()-b);} std::sort(w.begin(),w.end()); std::sort(c.begin(),c.end()); return {w[reps/2],c[reps/2]};}
at::Tensor sdpa(const at::Tensor& q,const at::Tensor& k,const at::Tensor& v){return std::get<0>(at::_scaled_dot_product_attention(q,k,v,{},0.0,false,true));}
int main(int argc,char** argv){
  tracker.base=c10::GetCPUAllocator(); c10::SetCPUAllocator(&tracker,100);
  int64_t B=1,H=8,T=argc>1?atoi(argv[1]):4096,D=64,tile=argc>2?atoi(argv[2]):64; int reps=argc>3?atoi(argv[3]):3; int threads=argc>4?atoi(argv[4]):2;
  at::set_num_threads(threads); at::manual_seed(0);
  auto q=at::randn({B,H,T,D}),k=at::randn({B,H,T,D}),v=at::randn({B,H,T,D}),g=at::randn({B,H,T,D});
  LayoutSet L={std::make_shared<const BlockLayout>(BlockLayout::from_dense(at::ones({T,T},at::kBool).tril(),tile))};
  double tile_flops=4.0*B*H*D*L[0]->nnz()*tile*tile, scale=0.125;
  auto a=at::randn({2048,2048}),bm=at::randn({2048,2048});
  for(int rep=0;rep<reps;++rep){
    auto gm=med([&]{at::mm(a,bm);},3); double gf=2.0*2048*2048*2048;
    auto f=med([&]{block_sparse_forward(q,k,v,L,scale);},3);
    auto s=med([&]{sdpa(q,k,v);},3);
    auto qq=q.clone().requires_grad_(),kk=k.clone().requires_grad_(),vv=v.clone().requires_grad_();
    auto fb=med([&]{torch::autograd::grad({block_sparse_attention(qq,kk,vv,L,scale)},{qq,kk,vv},{g});},3);
    auto sb=med([&]{torch::autograd::grad({sdpa(qq,kk,vv)},{qq,kk,vv},{g});},3);
    printf("[%d thr] sgemm2048 %.1f GF/s (cpu-norm %.1f/core) | fwd %.0f ms %.1f GF/s (cpu-norm %.1f/core) sdpa %.0f ms -> x%.2f | fwd+bwd %.0f ms sdpa %.0f ms -> x%.2f | achieved/ceiling %.2f (cpu-norm %.2f)\n",
      threads, gf/gm.first/1e9, gf/gm.second/1e9, f.first*1e3, tile_flops/f.first/1e9, tile_flops/f.second/1e9, s.first*1e3, s.first/f.first, fb.first*1e3, sb.first*1e3, sb.first/fb.first,
      (tile_flops/f.first)/(gf/gm.first), (tile_flops/f.second)/(gf/gm.second));
    fflush(stdout);
  }
  auto peak=[&](auto fn){ { std::lock_guard<std::mutex> gl(tracker.mu); tracker.peak=tracker.live; } size_t base=tracker.live; fn(); return (tracker.peak-base)/1048576.0; };
  auto qq=q.clone().requires_grad_(),kk=k.clone().requires_grad_(),vv=v.clone().requires_grad_();
  double pf=peak([&]{block_sparse_forward(q,k,v,L,scale);}), ps=peak([&]{sdpa(q,k,v);});
  double pfb=peak([&]{torch::autograd::grad({block_sparse_attention(qq,kk,vv,L,scale)},{qq,kk,vv},{g});}), psb=peak([&]{torch::autograd::grad({sdpa(qq,kk,vv)},{qq,kk,vv},{g});});
  printf("peak MiB: fwd %.1f vs sdpa %.1f (1/%.1f) | fwd+bwd %.1f vs sdpa %.1f (1/%.1f)\n",pf,ps,ps/pf,pfb,psb,psb/pfb);
}
