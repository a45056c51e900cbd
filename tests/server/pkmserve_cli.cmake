# pkmserve end to end: loads the bundled model, refuses a bad one with exit code 2.
add_test(NAME pkmserve.LoadsBundledModel
  COMMAND pkmserve --check --model ${PROJECT_SOURCE_DIR}/models/pkm-small)
set_tests_properties(pkmserve.LoadsBundledModel PROPERTIES
  PASS_REGULAR_EXPRESSION "check passed")

add_test(NAME pkmserve.Help COMMAND pkmserve --help)
set_tests_properties(pkmserve.Help PROPERTIES PASS_REGULAR_EXPRESSION "usage: pkmserve")

add_test(NAME pkmserve.BadModelExitsWith2
  COMMAND sh -c "\"$1\" --model \"$2\"; test $? -eq 2" sh $<TARGET_FILE:pkmserve>
          ${PROJECT_SOURCE_DIR}/tests/server/no-such-model)
add_test(NAME pkmserve.UnknownFlagExitsWith1
  COMMAND sh -c "\"$1\" --modle x; test $? -eq 1" sh $<TARGET_FILE:pkmserve>)
