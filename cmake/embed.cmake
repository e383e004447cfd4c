# inboxd_embed(OUT FILES): writes OUT, a C file with one table entry per file
# ({name, bytes, length}), so migrations and web assets ship inside the binary.
function(inboxd_embed out files)
  string(REPLACE ";" "|" joined "${files}")
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} "-DFILES=${joined}" -P ${CMAKE_SOURCE_DIR}/cmake/embed_run.cmake
    DEPENDS ${files} ${CMAKE_SOURCE_DIR}/cmake/embed_run.cmake
    COMMENT "Embedding ${out}"
    VERBATIM)
endfunction()
