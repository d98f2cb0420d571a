module socketlab/examples/careful

go 1.22
