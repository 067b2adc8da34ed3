// fleet-op's one operator: a call into libtorch that takes a std::string, so the module loads only when it was
// compiled with torch's own C++11 ABI (CppExtension passes torch's _GLIBCXX_USE_CXX11_ABI).
#ifdef FLEET_OP_FORCE_CXX11_ABI
// On purpose, for the tests: build against the ABI the build asks for, whatever torch's is.
#undef _GLIBCXX_USE_CXX11_ABI
#define _GLIBCXX_USE_CXX11_ABI FLEET_OP_FORCE_CXX11_ABI
#endif
#include <Python.h>
#include <string>
#include <ATen/core/symbol.h>

static PyObject* intern(PyObject*, PyObject* arg) {
  const char* text = PyUnicode_AsUTF8(arg);
  if (text == nullptr) return nullptr;
  c10::Symbol symbol = c10::Symbol::fromQualString(std::string(text));
  return PyLong_FromUnsignedLong(static_cast<c10::unique_t>(symbol));
}

static PyMethodDef methods[] = {
  {"intern", intern, METH_O, "c10::Symbol::fromQualString"},
  {nullptr, nullptr, 0, nullptr},
};
static PyModuleDef module = {PyModuleDef_HEAD_INIT, "fleet_op._C", nullptr, -1, methods};

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&module); }
