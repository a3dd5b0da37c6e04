package main

import "github.com/control-plane/cp/internal/xcmd"

func main() { xcmd.Main() }
