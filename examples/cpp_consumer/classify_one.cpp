// The smallest program on the installed runtime: classify one image with the
// default backend and the shipped model.
//   classify_one IMAGE [BACKEND]
#include <busi/classifier.hpp>
#include <iostream>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: classify_one IMAGE [BACKEND]\n";
    return 2;
  }
  try {
    auto classifier = busi::make_classifier(argc > 2 ? argv[2] : "cpu_int");
    const busi::Prediction p = classifier->classify_file(argv[1]);
    std::cout << argv[1] << ": " << p.class_name;
    for (std::size_t c = 0; c < p.scores.size(); ++c)
      std::cout << " " << classifier->model().class_names[c] << "=" << p.scores[c];
    std::cout << "\n";
  } catch (const std::exception& e) {
    std::cerr << "classify_one: " << e.what() << "\n";
    return 1;
  }
}
