module goro/syncbench

go 1.19
