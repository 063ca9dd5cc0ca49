#include "fpga_classifier.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

#include "busi/backend.hpp"
#include "busi/error.hpp"
#include "busi/limits.hpp"
#include "fpga_manager.hpp"

namespace busi::fpga {
namespace {

using clock_type = std::chrono::steady_clock;
uint64_t since(clock_type::time_point t) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t).count());
}

// One process drives the accelerator at a time (the Classifier contract).
std::mutex& device_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

fpga_classifier::fpga_classifier(std::shared_ptr<const Model> model, const BackendSettings& settings)
    : model_(std::move(model)) {
  const std::string overlay_dir = settings.text("overlay", "");
  if (overlay_dir.empty())
    throw error("backend fpga needs an overlay: pass --overlay DIR (setting 'overlay'), a folder with overlay.json");
  const std::filesystem::path root = settings.text("device_root", "/");
  const auto timeout = std::chrono::milliseconds(settings.whole_number("timeout_ms", 10000, 1, 3600000));
  max_batch_ = static_cast<std::size_t>(settings.whole_number("max_batch", 64, 1, 65536));
  max_failures_ = static_cast<int>(settings.whole_number("max_failures", 3, 1, 1000000));
  const program_mode program = parse_program_mode(settings.one_of("program", "auto", {"auto", "always", "never"}));

  overlay_ = overlay_description::load(overlay_dir);
  overlay_.check_against(*model_);
  if (overlay_.model_name != model_->name)
    throw error("overlay " + overlay_.name + " was built from model '" + overlay_.model_name +
                "' (its weights are in the bitstream), but the model given is '" + model_->name + "'");

  const hwh_info hwh = load_hwh(overlay_.hwh);
  const ip_window& in_ip = hwh.ip(overlay_.input.dma);
  const ip_window& out_ip = hwh.ip(overlay_.output.dma);

  std::lock_guard lock(device_mutex());
  const bool programmed = program_bitstream(overlay_.bitstream, root, program);
  const double want_mhz =
      static_cast<double>(settings.whole_number("fclk_mhz", std::llround(overlay_.fclk_mhz), 0, 250));
  const double fclk = want_mhz > 0 ? set_fclk0(root, want_mhz) : read_fclk0(root);

  // Map at most the 64 KiB the IODMA control bundle can use; ranges are often larger.
  const auto mem = root / "dev/mem";
  auto idma =
      register_window::map_physical(mem, in_ip.base, std::min<uint64_t>(in_ip.range, 0x10000), overlay_.input.dma);
  auto odma =
      register_window::map_physical(mem, out_ip.base, std::min<uint64_t>(out_ip.range, 0x10000), overlay_.output.dma);
  dma_ = std::make_unique<iodma_pair>(std::move(idma), std::move(odma), timeout);
  dma_->check_idle();

  allocator_options alloc;
  alloc.stack = settings.text("buffer_stack", "auto");
  alloc.device_root = root;
  allocator_ = make_dma_allocator(alloc);
  // Port sizes are bounded by the overlay reader (kPortElements); the product
  // with max_batch is checked here so the buffer size cannot wrap.
  const auto out_total = limits::checked_mul(max_batch_, overlay_.output.packed_bytes());
  const auto in_total = limits::checked_mul(max_batch_, overlay_.input.packed_bytes());
  if (!out_total || !in_total || *out_total > limits::kDmaBufferBytes || *in_total > limits::kDmaBufferBytes ||
      (*out_total + 4095) / 4096 * 4096 + *in_total > limits::kDmaBufferBytes)
    throw error("overlay " + overlay_.name + ": max_batch " + std::to_string(max_batch_) + " x (" +
                std::to_string(overlay_.input.packed_bytes()) + " input + " +
                std::to_string(overlay_.output.packed_bytes()) + " output bytes) exceeds the DMA buffer limit of " +
                std::to_string(limits::kDmaBufferBytes) + " bytes; lower max_batch");
  output_area_ = (*out_total + 4095) / 4096 * 4096;
  io_ = allocator_->allocate(output_area_ + *in_total);

  // The marker: every output element at the datatype's maximum. For top-1 that
  // is an index no model here has (>= classes); for logits, all classes at the
  // largest representable value at once, which a real run does not produce.
  std::vector<int64_t> top(overlay_.output.elements(), overlay_.output.datatype.max());
  marker_.resize(overlay_.output.packed_bytes());
  pack(top.data(), overlay_.output.vectors(), overlay_.output.inner(), overlay_.output.datatype, marker_.data());
  scratch_.resize(overlay_.output.elements());

  std::ostringstream d;
  d << "fpga: overlay " << overlay_.name << " (" << overlay_.dir.string() << "), " << overlay_.input.dma << " @ "
    << hex(in_ip.base) << ", " << overlay_.output.dma << " @ " << hex(out_ip.base) << ", FCLK0 " << fclk
    << " MHz, buffers " << allocator_->name() << ", output "
    << (overlay_.kind == output_kind::top1 ? "top-1" : "logits") << ", max batch " << max_batch_
    << (programmed ? ", bitstream programmed" : ", bitstream already loaded")
    << (root == "/" ? "" : ", device root " + root.string());
  description_ = d.str();
}

void fpga_classifier::infer(std::span<const Tensor8> inputs, std::span<RawOutput> outputs) {
  for (std::size_t first = 0; first < inputs.size(); first += max_batch_) {
    const std::size_t count = std::min(max_batch_, inputs.size() - first);
    run_chunk(inputs.subspan(first, count), outputs.subspan(first, count));
  }
}

void fpga_classifier::run_chunk(std::span<const Tensor8> inputs, std::span<RawOutput> out) {
  // A device that failed max_failures_ runs in a row is not tried again: a
  // dead or wedged board would otherwise cost every remaining image its timeout.
  if (consecutive_failures_ >= max_failures_)
    throw device_error(ECANCELED, "fpga: not attempted: the device failed " + std::to_string(consecutive_failures_) +
                                      " runs in a row (last: " + last_failure_ +
                                      "); make a new classifier once the board is back");
  try {
    run_on_device(inputs, out);
    consecutive_failures_ = 0;
  } catch (const device_error& e) {
    ++consecutive_failures_;
    last_failure_ = e.what();
    throw;
  }
}

void fpga_classifier::run_on_device(std::span<const Tensor8> inputs, std::span<RawOutput> out) {
  const std::size_t count = inputs.size();
  const std::size_t in_bytes = overlay_.input.packed_bytes(), out_bytes = overlay_.output.packed_bytes();
  std::lock_guard lock(device_mutex());
  auto t = clock_type::now();
  uint8_t* result = io_->data();
  for (std::size_t i = 0; i < count; ++i) std::memcpy(result + i * out_bytes, marker_.data(), out_bytes);
  uint8_t* in = result + output_area_;
  for (std::size_t i = 0; i < count; ++i)
    pack(inputs[i].pixels.data(), overlay_.input.vectors(), overlay_.input.inner(), overlay_.input.datatype,
         in + i * in_bytes);
  times_.pack += since(t);

  uint64_t acked = allocator_->acknowledgement_wait_ns();
  t = clock_type::now();
  io_->sync_for_device(0, output_area_ + count * in_bytes);
  uint64_t waited = allocator_->acknowledgement_wait_ns() - acked;
  times_.flush += since(t) - waited;
  times_.sync_wait += waited;

  t = clock_type::now();
  dma_->check_idle();
  dma_->start(io_->device_address() + output_area_, io_->device_address(), static_cast<uint32_t>(count));
  times_.start += since(t);

  t = clock_type::now();
  times_.polls += dma_->wait();
  times_.wait += since(t);

  acked = allocator_->acknowledgement_wait_ns();
  t = clock_type::now();
  io_->sync_for_cpu(0, count * out_bytes);
  waited = allocator_->acknowledgement_wait_ns() - acked;
  times_.invalidate += since(t) - waited;
  times_.sync_wait += waited;

  t = clock_type::now();
  for (std::size_t i = 0; i < count; ++i) decode(result + i * out_bytes, i, out[i]);
  times_.unpack += since(t);
  times_.batches += 1;
  times_.images += count;
}

void fpga_classifier::decode(const uint8_t* packed, std::size_t image, RawOutput& out) const {
  const io_port& port = overlay_.output;
  if (std::memcmp(packed, marker_.data(), marker_.size()) == 0)
    throw device_error(EIO, port.dma + ": output of image " + std::to_string(image) +
                                " still holds the fill marker after the batch finished: the accelerator wrote "
                                "nothing, or the cache invalidate (sync_for_cpu) had no effect");
  if (overlay_.kind == output_kind::top1) {
    unpack(packed, port.vectors(), port.inner(), port.datatype, scratch_.data());
    const int32_t top = scratch_[0];
    if (top < 0 || static_cast<std::size_t>(top) >= model_->num_classes())
      throw device_error(EIO, port.dma + ": class index " + std::to_string(top) + " for image " +
                                  std::to_string(image) + " is out of range for " +
                                  std::to_string(model_->num_classes()) + " classes");
    out.top_class = top;
    return;
  }
  out.logits.resize(port.elements());
  unpack(packed, port.vectors(), port.inner(), port.datatype, out.logits.data());
}

}  // namespace busi::fpga

namespace busi {
std::unique_ptr<Classifier> make_fpga_classifier(std::shared_ptr<const Model> model, const BackendSettings& settings) {
  return std::make_unique<fpga::fpga_classifier>(std::move(model), settings);
}
}  // namespace busi
