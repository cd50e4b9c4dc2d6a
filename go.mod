module github.com/ournsq/nsq

go 1.26

require (
	github.com/BurntSushi/toml v1.3.2 // indirect
	github.com/bitly/go-simplejson v0.5.1 // indirect
	github.com/golang/snappy v0.0.1 // indirect
	github.com/julienschmidt/httprouter v1.3.0 // indirect
	github.com/mreiferson/go-options v1.0.0 // indirect
	github.com/nsqio/go-diskqueue v1.1.0 // indirect
	github.com/nsqio/go-nsq v1.1.0 // indirect
)
