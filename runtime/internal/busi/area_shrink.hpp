// cv::resize(INTER_AREA) of 8-bit gray pixels to float pixels, without
// OpenCV: for the gate's coarser scales (make_prediction's ood_features).
// In this tree only; never installed.
#pragma once

#include <cstdint>
#include <vector>

namespace busi {

// `out` (to_height x to_width, row-major) = cv::resize of the height x width
// pixels converted to CV_32F, with INTER_AREA, bit for bit: the area tables'
// float arithmetic of gray-area-v1's fused pass (runtime/src/image.cpp) for a
// shrink by a scale that is not a whole number, OpenCV's cell averages for a
// whole-number one. Throws busi::error unless it is a shrink (to_height <=
// height, to_width <= width, neither 0).
void area_shrink(const uint8_t* pixels, int height, int width, int to_height, int to_width, std::vector<float>& out);

}  // namespace busi
