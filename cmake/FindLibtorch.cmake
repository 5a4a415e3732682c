# Locates libtorch without downloading anything. Sets TORCH_LIBRARIES, STENOSIS_TORCH_LIBRARY_DIR,
# STENOSIS_TORCH_SOURCE (how it was found) and STENOSIS_TORCH_HAS_CUDA.

function(_stenosis_python_torch_dir out_var)
  set(_candidates "")
  if(DEFINED ENV{STENOSIS_PYTHON})
    list(APPEND _candidates "$ENV{STENOSIS_PYTHON}")
  endif()
  list(APPEND _candidates python3 /usr/bin/python3)
  foreach(_py IN LISTS _candidates)
    execute_process(
      COMMAND ${_py} -c "import torch.utils, os; print(os.path.join(torch.utils.cmake_prefix_path, 'Torch'))"
      OUTPUT_VARIABLE _dir
      ERROR_QUIET
      RESULT_VARIABLE _rc
      OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(_rc EQUAL 0 AND EXISTS "${_dir}/TorchConfig.cmake")
      set(${out_var} "${_dir}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set(${out_var} "" PARENT_SCOPE)
endfunction()

# Defines the imported target stenosis_torch for the CUDA libtorch at root and sets, in the caller's scope,
# Torch_FOUND, Torch_VERSION, TORCH_INSTALL_PREFIX, TORCH_LIBRARIES and STENOSIS_TORCH_HAS_CUDA.
function(_stenosis_import_cuda_libtorch root)
  set(_lib "${root}/lib")
  foreach(_name torch torch_cpu c10 torch_cuda c10_cuda)
    if(NOT EXISTS "${_lib}/lib${_name}.so")
      message(FATAL_ERROR "libtorch: ${_lib}/lib${_name}.so is missing from the CUDA libtorch at ${root}")
    endif()
  endforeach()
  set(_version "")
  if(EXISTS "${root}/share/cmake/Torch/TorchConfigVersion.cmake")
    file(STRINGS "${root}/share/cmake/Torch/TorchConfigVersion.cmake" _line REGEX "set\\(PACKAGE_VERSION \"")
    string(REGEX REPLACE ".*PACKAGE_VERSION \"([^\"]*)\".*" "\\1" _version "${_line}")
  endif()
  # The C++ ABI flag, where the libtorch's config states one (recent ones are built with the default ABI).
  set(_abi "")
  file(STRINGS "${root}/share/cmake/Torch/TorchConfig.cmake" _abi_line REGEX "_GLIBCXX_USE_CXX11_ABI=[01]")
  if(_abi_line)
    string(REGEX REPLACE ".*_GLIBCXX_USE_CXX11_ABI=([01]).*" "-D_GLIBCXX_USE_CXX11_ABI=\\1" _abi "${_abi_line}")
  endif()
  if(NOT TARGET stenosis_torch)
    add_library(stenosis_torch INTERFACE IMPORTED)
    set_target_properties(stenosis_torch PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${root}/include;${root}/include/torch/csrc/api/include"
      INTERFACE_COMPILE_OPTIONS "${_abi}"
      # --no-as-needed: nothing in the addon calls into the CUDA libraries, and a linker that drops unused
      # libraries would leave libtorch without its CUDA backend.
      INTERFACE_LINK_LIBRARIES
        "-Wl,--push-state,--no-as-needed,${_lib}/libtorch_cuda.so,${_lib}/libc10_cuda.so,--pop-state;\
${_lib}/libtorch.so;${_lib}/libtorch_cpu.so;${_lib}/libc10.so")
  endif()
  set(Torch_FOUND TRUE PARENT_SCOPE)
  set(Torch_VERSION "${_version}" PARENT_SCOPE)
  set(TORCH_INSTALL_PREFIX "${root}" PARENT_SCOPE)
  set(TORCH_LIBRARIES stenosis_torch PARENT_SCOPE)
  set(STENOSIS_TORCH_HAS_CUDA ON PARENT_SCOPE)
endfunction()

macro(stenosis_find_libtorch)
  set(_torch_hint "")
  set(STENOSIS_TORCH_SOURCE "")
  if(DEFINED LIBTORCH)
    set(_torch_hint "${LIBTORCH}/share/cmake/Torch")
    set(STENOSIS_TORCH_SOURCE "LIBTORCH=${LIBTORCH}")
  elseif(DEFINED ENV{LIBTORCH})
    set(_torch_hint "$ENV{LIBTORCH}/share/cmake/Torch")
    set(STENOSIS_TORCH_SOURCE "LIBTORCH=$ENV{LIBTORCH}")
  elseif(DEFINED Torch_DIR)
    set(_torch_hint "${Torch_DIR}")
    set(STENOSIS_TORCH_SOURCE "Torch_DIR=${Torch_DIR}")
  elseif(DEFINED ENV{Torch_DIR})
    set(_torch_hint "$ENV{Torch_DIR}")
    set(STENOSIS_TORCH_SOURCE "Torch_DIR=$ENV{Torch_DIR}")
  endif()

  if(_torch_hint)
    if(NOT EXISTS "${_torch_hint}/TorchConfig.cmake")
      message(FATAL_ERROR "libtorch: ${STENOSIS_TORCH_SOURCE} was given but ${_torch_hint}/TorchConfig.cmake "
                          "does not exist. Point LIBTORCH at a libtorch folder (it holds share/cmake/Torch) or "
                          "unset it to use a Python torch or Debian's libtorch-dev.")
    endif()
    set(Torch_DIR "${_torch_hint}")
  else()
    _stenosis_python_torch_dir(_py_torch_dir)
    if(_py_torch_dir)
      set(Torch_DIR "${_py_torch_dir}")
      set(STENOSIS_TORCH_SOURCE "Python torch package (${_py_torch_dir})")
    else()
      set(STENOSIS_TORCH_SOURCE "system")
    endif()
  endif()

  # TorchConfig.cmake looks for its libraries and for Caffe2Config.cmake with PATHS, which CMake searches after
  # the system's folders: with Debian's libtorch-dev installed, a LIBTORCH or Python torch would get 2.x headers
  # but Debian's 1.13 libraries. Searching the chosen libtorch's folder first, and forgetting what an earlier
  # configure with another libtorch found, keeps the two together.
  if(Torch_DIR)
    get_filename_component(_torch_root "${Torch_DIR}/../../.." ABSOLUTE)
    list(PREPEND CMAKE_PREFIX_PATH "${_torch_root}")
    if(NOT "${_torch_root}" STREQUAL "${STENOSIS_TORCH_ROOT_USED}")
      unset(Caffe2_DIR CACHE)
      get_cmake_property(_cache_vars CACHE_VARIABLES)
      foreach(_var IN LISTS _cache_vars)
        if(_var MATCHES "_LIBRARY$" AND "$CACHE{${_var}}" MATCHES "(torch|c10|kineto|caffe2)")
          unset(${_var} CACHE)
        endif()
      endforeach()
      set(STENOSIS_TORCH_ROOT_USED "${_torch_root}" CACHE INTERNAL "libtorch root of the last configure")
    endif()
  endif()

  set(STENOSIS_TORCH_HAS_CUDA OFF)
  if(Torch_DIR AND EXISTS "${_torch_root}/lib/libtorch_cuda.so")
    # A CUDA libtorch (e.g. the one in a pip torch wheel) is imported directly: its TorchConfig.cmake insists on a
    # CUDA toolkit (nvcc, headers), which the addon does not need: it compiles no CUDA code and only has to link,
    # and keep, the CUDA libraries so that their kernels register. Their own RPATHs find the CUDA runtime.
    _stenosis_import_cuda_libtorch("${_torch_root}")
  else()
    find_package(Torch QUIET)
  endif()
  if(NOT Torch_FOUND)
    message(FATAL_ERROR
      "libtorch was not found. Do one of:\n"
      "  - install Debian's libtorch with: bash scripts/install-system-deps.sh\n"
      "  - set LIBTORCH to an unpacked libtorch folder (the one holding share/cmake/Torch)\n"
      "  - set Torch_DIR to a folder holding TorchConfig.cmake\n"
      "  - install a Python torch package that python3 can import")
  endif()

  find_library(_stenosis_torch_cpu torch_cpu HINTS ${TORCH_INSTALL_PREFIX}/lib NO_CACHE)
  if(_stenosis_torch_cpu)
    get_filename_component(STENOSIS_TORCH_LIBRARY_DIR "${_stenosis_torch_cpu}" DIRECTORY)
  else()
    set(STENOSIS_TORCH_LIBRARY_DIR "${TORCH_INSTALL_PREFIX}/lib")
  endif()

  if(TORCH_CUDA_LIBRARIES OR CUDA_FOUND)
    set(STENOSIS_TORCH_HAS_CUDA ON)
  endif()
  # Recent libtorch headers refuse anything older than C++20 (they say so in torch/all.h); older ones take C++17.
  set(_torch_all_h "${TORCH_INSTALL_PREFIX}/include/torch/csrc/api/include/torch/all.h")
  if(EXISTS "${_torch_all_h}")
    file(STRINGS "${_torch_all_h}" _needs_cxx20 REGEX "C\\+\\+20 or later")
    if(_needs_cxx20)
      set(CMAKE_CXX_STANDARD 20)
    endif()
  endif()
  message(STATUS "libtorch: ${Torch_VERSION} from ${STENOSIS_TORCH_SOURCE}; libraries in "
                 "${STENOSIS_TORCH_LIBRARY_DIR}; CUDA ${STENOSIS_TORCH_HAS_CUDA}; C++${CMAKE_CXX_STANDARD}")
endmacro()
