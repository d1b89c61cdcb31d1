# What `cmake --install` puts under the prefix (scripts/package installs into a staging dir
# with --prefix /usr): the two programs, and the web console's static files where snapvold
# looks for them beside its binary (<prefix>/share/snapvol/console, see daemon/settings_file.h).
# The console is built by scripts/build-console into console/dist; scripts/package checks it.
include(GNUInstallDirs)
install(TARGETS snapvold snapvol RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/console/dist/
        DESTINATION ${CMAKE_INSTALL_DATADIR}/snapvol/console
        FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
        DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                              WORLD_READ WORLD_EXECUTE)
