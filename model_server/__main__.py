from model_server.main import main

main()
