#pragma once
// busi-model import: QONNX -> .bqnn through the Python importer (busi_model_import.cpp).
// argv[1] is "import"; returns only by throwing (the process becomes the importer).
int run_import(int argc, char** argv);
