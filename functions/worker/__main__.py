from functions.worker.main import main

main()
