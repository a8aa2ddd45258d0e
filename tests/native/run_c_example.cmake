# CTest driver of the C example test (tests/native/CMakeLists.txt): cmake -DEXAMPLE=... -DTESTS=...
# -DWORK=... [-DEMULATOR=...] -P run_c_example.cmake. The example reads one sample from a file and prints
# its outputs; the test program writes the sample and checks the printout (c_example_check.cpp). EMULATOR
# (qemu-aarch64 and its options, separated by |) runs the cross-built programs.
string(REPLACE "|" ";" EMULATOR "${EMULATOR}")
file(MAKE_DIRECTORY ${WORK})
execute_process(COMMAND ${EMULATOR} ${TESTS} --example-input ${WORK}/sample.f32 RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "writing the sample failed (${rc})")
endif()
execute_process(COMMAND ${EMULATOR} ${EXAMPLE} ${MODEL} ${WORK}/sample.f32 RESULT_VARIABLE rc
                OUTPUT_VARIABLE printed ERROR_VARIABLE err)
message("${printed}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the example exited with ${rc}")
endif()
file(WRITE ${WORK}/printed.txt "${printed}")
execute_process(COMMAND ${EMULATOR} ${TESTS} --example-check ${WORK}/printed.txt RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the example's outputs differ from the recorded ones")
endif()
